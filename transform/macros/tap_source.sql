{#- A table of the tap, read from every schema it was loaded into.

    var('tap_schemas'): the schemas to read, a list (or a comma-separated string); unset, the
    source's own schema (DBT_SOURCE_SCHEMA). Several schemas are for runs that load tenants
    into schemas of their own (orchestrate/: one schema per tenant group, because a run's
    ACTIVATE_VERSION retires every row of a table its run did not send, other tenants' rows
    included). Their tables are read as one: union all by column name, a column one schema
    lacks read as null. Every row carries its tenant_id, so the models stay per tenant.

    `columns` ({name: type}) marks an optional table (a stream not selected, or without rows
    yet): where no schema has it, an empty derived table with those columns stands in, so the
    models build either way. A derived table is aliased with the table's name unless
    `aliased` is false (for a caller that aliases it). At parse time the source is named, so
    dbt keeps its lineage. -#}
{% macro tap_source(table, columns=none, aliased=true) -%}
    {%- set own = source('tap_microsoft365', table) -%}
    {%- if not execute -%}
        {{ return(own) }}
    {%- endif -%}
    {%- set schemas = var('tap_schemas', none) or [own.schema] -%}
    {%- if schemas is string -%}
        {%- set schemas = schemas.split(',') | map('trim') | reject('equalto', '') | list -%}
    {%- endif -%}
    {%- set found = [] -%}
    {%- for schema in schemas -%}
        {%- set relation = adapter.get_relation(
            database=own.database, schema=schema, identifier=own.identifier
        ) -%}
        {%- if relation is not none -%}
            {%- do found.append(relation) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set alias = ' as ' ~ own.identifier if aliased else '' -%}
    {%- if found | length == 0 and columns is not none -%}
        (select
        {%- for name, type in columns.items() %}
            cast(null as {{ type }}) as {{ name }},
        {%- endfor %}
            cast(null as timestamp) as _sdc_deleted_at
        where 1 = 0){{ alias }}
    {%- elif found | length == 0 -%}
        {#- A required table that is missing: the database names it in its error. -#}
        {{ own }}
    {%- elif found | length == 1 -%}
        {{ found[0] }}
    {%- else -%}
        {%- set names = [] -%}
        {%- set held = {} -%}
        {%- for relation in found -%}
            {%- set mine = [] -%}
            {%- for column in adapter.get_columns_in_relation(relation) -%}
                {%- if column.name not in names -%}
                    {%- do names.append(column.name) -%}
                {%- endif -%}
                {%- do mine.append(column.name) -%}
            {%- endfor -%}
            {%- do held.update({relation.schema: mine}) -%}
        {%- endfor -%}
        ({%- for relation in found %}
        select
            {%- for name in names %}
            {% if name in held[relation.schema] %}{{ adapter.quote(name) }}{% else %}null{% endif %} as {{ adapter.quote(name) }}{{ "," if not loop.last }}
            {%- endfor %}
        from {{ relation }}
        {{ "union all" if not loop.last }}
        {%- endfor %}
        ){{ alias }}
    {%- endif -%}
{%- endmacro %}
