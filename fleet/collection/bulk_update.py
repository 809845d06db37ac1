"""Write many rows' new values in one statement per batch, without CASE/WHEN.

Django's `bulk_update` compiles one `CASE WHEN pk = … THEN …` per field per row: when a full
cycle rewrites every worker that compiling was about half of the collector's CPU. On PostgreSQL
this writes `UPDATE … FROM (VALUES (…), (…)) AS v(…)`, each value cast to its column's type, so
the statement is built by joining strings; elsewhere (SQLite) it is Django's `bulk_update`.
"""

from collections.abc import Sequence

from django.db import connection
from django.db.models import Model


def bulk_update(objs: Sequence[Model], fields: Sequence[str], batch_size: int) -> None:
    """Save `fields` of every object (all of one model) as `Model.objects.bulk_update` would."""
    if not objs or not fields:
        return
    model = type(objs[0])
    if connection.vendor != "postgresql":
        model._default_manager.bulk_update(objs, fields, batch_size=batch_size)
        return
    meta = model._meta
    quote = connection.ops.quote_name
    columns = [meta.pk] + [meta.get_field(name) for name in fields]
    row = "(" + ", ".join(f"%s::{field.db_type(connection)}" for field in columns) + ")"
    aliases = [f"c{n}" for n in range(len(columns))]  # v's columns: no clash with any name
    assignments = ", ".join(
        f"{quote(field.column)} = v.{alias}"
        for field, alias in zip(columns[1:], aliases[1:], strict=True)
    )
    for start in range(0, len(objs), batch_size):
        batch = objs[start : start + batch_size]
        params = [
            field.get_db_prep_save(getattr(obj, field.attname), connection)
            for obj in batch
            for field in columns
        ]
        sql = (
            f"UPDATE {quote(meta.db_table)} AS t SET {assignments} "
            f"FROM (VALUES {', '.join([row] * len(batch))}) AS v({', '.join(aliases)}) "
            f"WHERE t.{quote(meta.pk.column)} = v.c0"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
