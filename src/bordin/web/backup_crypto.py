"""Encrypted backups: ``bordin backup --encrypt`` and their restore (issue 15).

The key is a Fernet key (``bordin manage generate_field_key`` makes one) in the environment
variable ``BORDIN_BACKUP_KEY``; keep it apart from the backups, like the field key. Fernet is
AES-128-CBC with an HMAC-SHA256 per token (https://github.com/fernet/spec). The file is
streamed in 1 MiB chunks, so a large database never has to fit in memory:

``BORDIN-ENCRYPTED-BACKUP-1\\n`` then, per chunk, a 4-byte big-endian length and a Fernet token
whose plaintext is the chunk's index (8 bytes), a "last chunk" flag (1 byte) and the data.
Decryption checks every token, that the indexes run 0, 1, 2, ... and that the file ends with
the chunk flagged last, so a reordered, cut or extended file is refused, not restored.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

MAGIC = b"BORDIN-ENCRYPTED-BACKUP-1\n"
KEY_VARIABLE = "BORDIN_BACKUP_KEY"
CHUNK = 1024 * 1024
_HEADER = struct.Struct(">Q?")
_LENGTH = struct.Struct(">I")


class BackupKeyError(Exception):
    """No usable key, or a file this key cannot decrypt; the message says what to fix."""


def key_from_environment() -> Fernet:
    raw = os.environ.get(KEY_VARIABLE, "").strip()
    if not raw:
        raise BackupKeyError(
            f"{KEY_VARIABLE} is not set. Generate a key with `bordin manage "
            f"generate_field_key`, set {KEY_VARIABLE}=<key>, and keep a copy apart from the "
            "backups: without it an encrypted backup cannot be restored."
        )
    try:
        return Fernet(raw.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise BackupKeyError(
            f"{KEY_VARIABLE} is not a valid key (32 url-safe base64-encoded bytes); "
            "generate one with `bordin manage generate_field_key`."
        ) from None


def is_encrypted(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(len(MAGIC)) == MAGIC


def encrypt_file(src: Path, dest: Path, fernet: Fernet) -> None:
    """Write ``src`` encrypted to ``dest`` (created 0600)."""
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with src.open("rb") as inp, os.fdopen(fd, "wb") as out:
        out.write(MAGIC)
        index = 0
        chunk = inp.read(CHUNK)
        while True:
            following = inp.read(CHUNK)
            token = fernet.encrypt(_HEADER.pack(index, not following) + chunk)
            out.write(_LENGTH.pack(len(token)) + token)
            if not following:
                break
            chunk, index = following, index + 1
        out.flush()
        os.fsync(out.fileno())


def decrypt_file(src: Path, dest: Path, fernet: Fernet) -> None:
    """Write the plaintext of the encrypted backup ``src`` to ``dest`` (created 0600)."""
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with src.open("rb") as inp, os.fdopen(fd, "wb") as out:
        if inp.read(len(MAGIC)) != MAGIC:
            raise BackupKeyError(f"{src} is not an encrypted Bordin backup.")
        expected, last = 0, False
        while not last:
            length = inp.read(_LENGTH.size)
            if len(length) != _LENGTH.size:
                raise BackupKeyError(f"{src} is cut short: the backup is incomplete.")
            token = inp.read(_LENGTH.unpack(length)[0])
            try:
                plain = fernet.decrypt(token)
            except InvalidToken:
                raise BackupKeyError(
                    f"{src} cannot be decrypted with {KEY_VARIABLE}: wrong key, or the file "
                    "was changed."
                ) from None
            index, last = _HEADER.unpack(plain[: _HEADER.size])
            if index != expected:
                raise BackupKeyError(f"{src} was changed: its parts are out of order.")
            out.write(plain[_HEADER.size :])
            expected += 1
        if inp.read(1):
            raise BackupKeyError(f"{src} was changed: it goes on after its last part.")
