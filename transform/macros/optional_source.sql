{#- A table of the tap that may be missing: the stream was not selected (user_sign_in_activity is
    off unless selected), or the stream has had no row yet (a tenant without Copilot; a target
    may create no table for a stream without rows). Returns the source relation when it exists, else an empty derived table with
    the given columns ({name: type}) under the table's name, so the models build either way.
    Callers do not alias it.
    At parse time (execute is false) the source is still named, so dbt keeps its lineage. -#}
{% macro optional_source(table, columns) -%}
    {%- set relation = source('tap_microsoft365', table) -%}
    {%- set found = none -%}
    {%- if execute -%}
        {%- set found = adapter.get_relation(
            database=relation.database, schema=relation.schema, identifier=relation.identifier
        ) -%}
    {%- endif -%}
    {%- if found is not none -%}
        {{ relation }}
    {%- else -%}
        (select
        {%- for name, type in columns.items() %}
            cast(null as {{ type }}) as {{ name }},
        {%- endfor %}
            cast(null as timestamp) as _sdc_deleted_at
        where 1 = 0) as {{ relation.identifier }}
    {%- endif -%}
{%- endmacro %}
