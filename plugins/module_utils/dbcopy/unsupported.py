# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the copy does not reproduce: the query naming every such object of the source schema.

``catalog.read_catalog`` runs ``UNSUPPORTED_QUERY`` into ``SourceCatalog.unsupported`` so that the run fails at plan
time naming them; ``not_member`` leaves out what an extension owns (the catalog's type query uses it too).
"""

from __future__ import annotations

# Neither a member of an extension nor made implicitly with another object (range constructors, multiranges).
_NOT_EXTENSION_MEMBER = """
NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '{catalog}'::regclass AND e.objid = {oid}
            AND (e.deptype = 'e' OR (e.deptype = 'i' AND e.refclassid = 'pg_type'::regclass)))
"""


def not_member(catalog: str, oid: str) -> str:
    return _NOT_EXTENSION_MEMBER.format(catalog=catalog, oid=oid)


# Objects of a kind the copy does not reproduce, found by name in their catalog unless an extension owns them:
# (kind, catalog, name column, namespace column).
UNSUPPORTED_NAMED = (
    ("operator", "pg_operator", "oprname", "oprnamespace"),
    ("operator class", "pg_opclass", "opcname", "opcnamespace"),
    ("operator family", "pg_opfamily", "opfname", "opfnamespace"),
    ("collation", "pg_collation", "collname", "collnamespace"),
    ("conversion", "pg_conversion", "conname", "connamespace"),
    ("text search configuration", "pg_ts_config", "cfgname", "cfgnamespace"),
    ("text search dictionary", "pg_ts_dict", "dictname", "dictnamespace"),
)


def _unsupported_named() -> str:
    return "\n  UNION ALL\n".join(
        f"  SELECT '{kind}', o.{name} FROM {catalog} o WHERE o.{namespace} = %(ns)s AND {not_member(catalog, 'o.oid')}"
        for kind, catalog, name, namespace in UNSUPPORTED_NAMED
    )


UNSUPPORTED_QUERY = f"""
SELECT kind, name FROM (
  SELECT CASE c.relkind WHEN 'p' THEN 'partitioned table' WHEN 'f' THEN 'foreign table'
                        WHEN 'm' THEN 'materialized view' WHEN 'I' THEN 'partitioned index'
                        ELSE 'relation of kind ' || c.relkind::text END AS kind, c.relname::text AS name
  FROM pg_class c WHERE c.relnamespace = %(ns)s AND c.relkind NOT IN ('r', 'v', 'S', 'i', 'c')
  UNION ALL
  SELECT 'table with inheritance or partition', c.relname FROM pg_class c
  WHERE c.relnamespace = %(ns)s AND c.relkind = 'r'
    AND (c.relispartition OR EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid OR i.inhparent = c.oid))
  UNION ALL
  SELECT 'typed table', c.relname FROM pg_class c WHERE c.relnamespace = %(ns)s AND c.reloftype <> 0
  UNION ALL
  SELECT 'trigger', tg.tgname || ' on ' || c.relname FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
  WHERE c.relnamespace = %(ns)s AND NOT tg.tgisinternal
  UNION ALL
  SELECT 'rule', r.rulename || ' on ' || c.relname FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
  WHERE c.relnamespace = %(ns)s AND r.rulename <> '_RETURN'
  UNION ALL
  SELECT 'row-level security policy', p.polname || ' on ' || c.relname FROM pg_policy p
  JOIN pg_class c ON c.oid = p.polrelid WHERE c.relnamespace = %(ns)s
  UNION ALL
  SELECT 'row-level security', c.relname FROM pg_class c
  WHERE c.relnamespace = %(ns)s AND (c.relrowsecurity OR c.relforcerowsecurity)
  UNION ALL
  SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' WHEN 'w' THEN 'window function'
                        ELSE 'function' END, p.oid::regprocedure::text FROM pg_proc p
  WHERE p.pronamespace = %(ns)s AND {not_member("pg_proc", "p.oid")}
  UNION ALL
  SELECT CASE t.typtype WHEN 'r' THEN 'range type' WHEN 'm' THEN 'multirange type' WHEN 'b' THEN 'base type'
                        WHEN 'p' THEN 'pseudo-type' ELSE 'type of kind ' || t.typtype::text END, t.typname
  FROM pg_type t WHERE t.typnamespace = %(ns)s AND t.typtype NOT IN ('e', 'd', 'c', 'r')
    AND NOT (t.typtype = 'b' AND t.typcategory = 'A' AND t.typelem <> 0)
    AND {not_member("pg_type", "t.oid")}
  UNION ALL
{_unsupported_named()}
  UNION ALL
  SELECT 'extended statistics', o.stxname FROM pg_statistic_ext o WHERE o.stxnamespace = %(ns)s
  UNION ALL
  SELECT 'default privileges', 'for role ' || pg_get_userbyid(d.defaclrole) FROM pg_default_acl d
  WHERE d.defaclnamespace = %(ns)s
  UNION ALL
  SELECT 'foreign key to another schema', co.conname || ' on ' || c.relname || ' references ' || co.confrelid::regclass::text
  FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN pg_class rc ON rc.oid = co.confrelid
  WHERE c.relnamespace = %(ns)s AND co.contype = 'f' AND rc.relnamespace <> %(ns)s
  UNION ALL
  SELECT DISTINCT 'view using a relation of another schema', c.relname || ' uses ' || d.refobjid::regclass::text
  FROM pg_class c JOIN pg_rewrite r ON r.ev_class = c.oid
  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass
  JOIN pg_class dc ON dc.oid = d.refobjid JOIN pg_namespace dn ON dn.oid = dc.relnamespace
  WHERE c.relnamespace = %(ns)s AND c.relkind = 'v' AND dc.relnamespace <> %(ns)s
    AND dn.nspname NOT IN ('pg_catalog', 'information_schema')
  UNION ALL
  SELECT 'large objects', count(*)::text || ' in the database' FROM pg_largeobject_metadata HAVING count(*) > 0
) u ORDER BY 1, 2
"""
