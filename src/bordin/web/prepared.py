"""Hot ORM queries compiled once per database connection instead of once per request (issue 10).

Django compiles a queryset's SQL every time it runs: for the check-in's link lookup (the link
with its client, clinic, episode and session, about sixty columns) compiling cost several
times more CPU than PostgreSQL spent running it. A :class:`PreparedQuery` builds its queryset
once per connection with sentinels in place of the values that change (a primary key, a
token's hash, the time), keeps the SQL Django wrote and the compiler that wrote it, and from
then on runs that SQL with the real values and turns the rows into model instances exactly as
the queryset would (Django's ``ModelIterable``: the same converters, related objects filled by
``select_related`` and annotations; or tuples, as ``values_list()`` gives them). The query is
the ORM's own, so it follows the models; it runs through the connection's cursor, so it is
logged and counted like any other query. :class:`PreparedUpdate` does the same for
``QuerySet.update``.

A queryset whose SQL does not carry each sentinel exactly once as an ordinary parameter is not
prepared, and a ``None`` value (which the ORM writes as ``IS NULL``) is not substituted: those
run through the ORM each time.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import connections, router, transaction
from django.db.models import Model, QuerySet
from django.db.models.query import (  # type: ignore[attr-defined]
    ModelIterable,
    ValuesListIterable,
    get_related_populators,
)
from django.db.models.sql import UpdateQuery

M = TypeVar("M", bound=Model)

#: A primary key no row has: a sentinel for queries by key.
NO_PK = -(2**62) + 10_007
#: Another, for a query with two keys.
NO_PK_2 = NO_PK + 1


@dataclass(frozen=True)
class Converted:
    """A sentinel for a parameter Django converts for the database (a datetime on SQLite
    becomes text): ``field``, a field of the query's model, converts it and the real values
    as a lookup on that field does."""

    sentinel: Any
    field: str


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple[Any, ...]
    positions: tuple[int, ...]  # of each sentinel in params
    converters: tuple[Callable[[Any], Any] | None, ...]  # of each value
    converters_out: dict[int, Any]  # of the columns read (compiler.get_converters)
    compiler: Any
    tuples: bool  # a values_list() query: rows as tuples
    start: int  # the model's own columns: row[start:end]
    end: int
    init_list: tuple[str, ...]
    related: tuple[Any, ...]
    annotations: tuple[tuple[str, int], ...]


class PreparedQuery(Generic[M]):
    """``build(*values)`` is a queryset of ``model`` whose only varying parameters are
    ``values``; :meth:`all` returns its rows as model instances, as ``list(build(*values))``
    would (:meth:`tuples` for a ``values_list()`` queryset).

    ``sentinels``: one per value, of the parameter's type, that no real call passes
    (:class:`Converted` for a parameter Django converts for the database).
    """

    def __init__(
        self, model: type[M], build: Callable[..., QuerySet[M, Any]], *sentinels: Any
    ) -> None:
        self.model = model
        self.build = build
        self.sentinels = sentinels
        # Per connection object (each thread has its own): a compiler belongs to a connection.
        self._compiled: weakref.WeakKeyDictionary[Any, _Compiled | None] = (
            weakref.WeakKeyDictionary()
        )

    def _compile(self, queryset: QuerySet[M, Any]) -> _Compiled | None:
        extra: Any = queryset  # Django's private state, not in the stubs
        if extra._known_related_objects or extra._prefetch_related_lookups:
            return None  # more than its SQL: left to the ORM
        tuples = queryset._iterable_class is ValuesListIterable
        if not tuples and queryset._iterable_class is not ModelIterable:
            return None
        compiler = queryset.query.get_compiler(using=queryset.db)
        sql, params = compiler.as_sql()
        params = tuple(params)
        located = _locate(self.model, self.sentinels, sql, params, compiler)
        if located is None:
            return None
        positions, converters = located
        if compiler.has_extra_select:
            return None
        columns = [expression for expression, _, _ in compiler.select[: compiler.col_count]]
        if compiler.has_composite_fields(columns):
            return None
        converters_out = compiler.get_converters(columns)
        if tuples:
            # values_list(): the columns in the order named, unless annotations reorder them.
            if queryset.query.annotation_select or queryset.query.extra_select:
                return None
            start = end = 0
            init_list: tuple[str, ...] = ()
            related: tuple[Any, ...] = ()
        else:
            klass_info, select = compiler.klass_info, compiler.select
            fields = klass_info["select_fields"]
            start, end = fields[0], fields[-1] + 1
            init_list = tuple(f[0].target.attname for f in select[start:end])
            related = tuple(get_related_populators(klass_info, select, queryset.db))
        return _Compiled(
            sql=sql,
            params=params,
            positions=positions,
            converters=converters,
            converters_out=converters_out,
            compiler=compiler,
            tuples=tuples,
            start=start,
            end=end,
            init_list=init_list,
            related=related,
            annotations=tuple((compiler.annotation_col_map or {}).items()),
        )

    def _rows(self, values: tuple[Any, ...]) -> tuple[_Compiled, list[Any]] | list[Any]:
        """The compiled query and its converted rows, or (not prepared) the ORM's result."""
        db = router.db_for_read(self.model)
        connection = connections[db]
        try:
            compiled = self._compiled[connection]
        except KeyError:
            sentinels = _sentinels(self.sentinels)
            compiled = self._compiled[connection] = self._compile(self.build(*sentinels).using(db))
        if compiled is None or any(v is None for v in values):
            # ``None`` is compiled as ``IS NULL``, not as a parameter: the ORM writes that.
            return list(self.build(*values).using(db))
        params = _params(compiled, values)
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        if rows and compiled.converters_out:
            # What results_iter does, with the converters found when compiling.
            rows = list(compiled.compiler.apply_converters(rows, compiled.converters_out))
        return compiled, rows

    def all(self, *values: Any) -> list[M]:
        """Every row of ``build(*values)``, as model instances."""
        found = self._rows(values)
        if isinstance(found, list):
            return found
        compiled, rows = found
        if compiled.tuples:
            raise TypeError("a values_list() query: use tuples()")
        db = router.db_for_read(self.model)
        out = []
        start, end, init_list = compiled.start, compiled.end, compiled.init_list
        for row in rows:
            obj: M = self.model.from_db(db, init_list, row[start:end])
            for populator in compiled.related:
                populator.populate(row, obj)
            for name, position in compiled.annotations:
                setattr(obj, name, row[position])
            out.append(obj)
        return out

    def tuples(self, *values: Any) -> list[tuple[Any, ...]]:
        """Every row of ``build(*values)``, a ``values_list()`` queryset, as tuples."""
        found = self._rows(values)
        if isinstance(found, list):
            return found
        compiled, rows = found
        if not compiled.tuples:
            raise TypeError("not a values_list() query: use all()")
        return [tuple(row) for row in rows]

    def first(self, *values: Any) -> M | None:
        """The first row of ``build(*values)`` (which should have a ``[:1]`` slice), or
        ``None``."""
        found = self.all(*values)
        return found[0] if found else None


def _converter(field: Any, compiler: Any) -> Callable[[Any], Any]:
    """A value as a lookup on ``field`` passes it to the database (``Lookup.get_db_prep_lookup``
    after ``get_prep_lookup``)."""
    connection = compiler.connection

    def convert(value: Any) -> Any:
        return field.get_db_prep_value(field.get_prep_value(value), connection, prepared=True)

    return convert


def _locate(
    model: type[Model], sentinels: tuple[Any, ...], sql: str, params: tuple[Any, ...], compiler: Any
) -> tuple[tuple[int, ...], tuple[Callable[[Any], Any] | None, ...]] | None:
    """Where each sentinel is in ``params`` and how a real value is converted, or ``None`` if
    some sentinel is not there exactly once as a parameter (then the SQL cannot be reused)."""
    positions = []
    converters = []
    for sentinel in sentinels:
        convert = None
        if isinstance(sentinel, Converted):
            convert = _converter(model._meta.get_field(sentinel.field), compiler)
            sentinel = convert(sentinel.sentinel)
        found = [k for k, p in enumerate(params) if type(p) is type(sentinel) and p == sentinel]
        if len(found) != 1 or str(sentinel) in sql:
            return None
        positions.append(found[0])
        converters.append(convert)
    return tuple(positions), tuple(converters)


def _sentinels(sentinels: tuple[Any, ...]) -> list[Any]:
    """The values a query is compiled with (a :class:`Converted`'s own sentinel)."""
    return [s.sentinel if isinstance(s, Converted) else s for s in sentinels]


def _params(compiled: Any, values: tuple[Any, ...]) -> list[Any]:
    params = list(compiled.params)
    for position, convert, value in zip(
        compiled.positions, compiled.converters, values, strict=True
    ):
        params[position] = value if convert is None else convert(value)
    return params


@dataclass(frozen=True)
class _CompiledUpdate:
    sql: str
    params: tuple[Any, ...]
    positions: tuple[int, ...]
    converters: tuple[Callable[[Any], Any] | None, ...]


class PreparedUpdate(Generic[M]):
    """``build(*values)`` is ``(queryset, changes)``; :meth:`run` is ``queryset.update(**changes)``
    (the number of rows changed), its SQL compiled once per connection like
    :class:`PreparedQuery`'s. Only an update of the model's own table (no conditions on other
    tables, no parent models) is prepared; any other runs through the ORM each time.
    """

    def __init__(
        self,
        model: type[M],
        build: Callable[..., tuple[QuerySet[M, Any], dict[str, Any]]],
        *sentinels: Any,
    ) -> None:
        self.model = model
        self.build = build
        self.sentinels = sentinels
        self._compiled: weakref.WeakKeyDictionary[Any, _CompiledUpdate | None] = (
            weakref.WeakKeyDictionary()
        )

    def _compile(self, db: str) -> _CompiledUpdate | None:
        queryset, changes = self.build(*_sentinels(self.sentinels))
        query: Any = queryset.using(db).query.chain(UpdateQuery)
        query.add_update_values(changes)
        query.annotations = {}
        query.get_initial_alias()
        if query.related_updates or query.count_active_tables() != 1:
            return None  # Django would read the keys first or update parents too
        compiler = query.get_compiler(db)
        sql, params = compiler.as_sql()
        if not sql:
            return None
        params = tuple(params)
        located = _locate(self.model, self.sentinels, sql, params, compiler)
        if located is None:
            return None
        return _CompiledUpdate(sql, params, *located)

    def run(self, *values: Any) -> int:
        db = router.db_for_write(self.model)
        connection = connections[db]
        try:
            compiled = self._compiled[connection]
        except KeyError:
            compiled = self._compiled[connection] = self._compile(db)
        if compiled is None or any(v is None for v in values):
            queryset, changes = self.build(*values)
            return queryset.using(db).update(**changes)
        with transaction.mark_for_rollback_on_error(using=db), connection.cursor() as cursor:
            cursor.execute(compiled.sql, _params(compiled, values))
            return int(cursor.rowcount)
