"""Staff authentication: second factor, session epochs ("log out everywhere"), lockout page."""
