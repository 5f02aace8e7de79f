{#- Reading the tap's nested values, which keep Graph's shape. target-postgres stores an object as
    jsonb and an array of objects as jsonb[]; target-duckdb stores both as JSON text. -#}

{#- A field of a JSON object, as text: json_text('prepaid_units', 'enabled'). -#}
{% macro json_text(column, key) -%}
    {{ return(adapter.dispatch('json_text', 'license_insight')(column, key)) }}
{%- endmacro %}

{% macro default__json_text(column, key) -%}
    ({{ column }} ->> '{{ key }}')
{%- endmacro %}

{% macro duckdb__json_text(column, key) -%}
    json_extract_string({{ column }}, '$.{{ key }}')
{%- endmacro %}

{#- `from <relation> as <alias>` joined with one row per element of an array-of-objects column,
    each element named `<element>` (a JSON object to read with json_text). -#}
{% macro from_unnested(relation, alias, column, element) -%}
    {{ return(adapter.dispatch('from_unnested', 'license_insight')(relation, alias, column, element)) }}
{%- endmacro %}

{% macro default__from_unnested(relation, alias, column, element) -%}
    {{ relation }} as {{ alias }}
    cross join lateral unnest({{ alias }}.{{ column }}) as unnested_{{ element }} ({{ element }})
{%- endmacro %}

{% macro duckdb__from_unnested(relation, alias, column, element) -%}
    {{ relation }} as {{ alias }}
    cross join unnest(cast(json({{ alias }}.{{ column }}) as json[])) as unnested_{{ element }} ({{ element }})
{%- endmacro %}

{#- Days from `start` (a date) to `end` (a date), as an integer. -#}
{% macro days_between(start, end) -%}
    {{ return(adapter.dispatch('days_between', 'license_insight')(start, end)) }}
{%- endmacro %}

{% macro default__days_between(start, end) -%}
    ({{ end }} - {{ start }})
{%- endmacro %}

{% macro duckdb__days_between(start, end) -%}
    date_diff('day', {{ start }}, {{ end }})
{%- endmacro %}

{#- The list of free SKU part numbers (var free_sku_part_numbers) as an SQL list. -#}
{% macro free_skus() -%}
    ({%- for sku in var('free_sku_part_numbers') -%}'{{ sku }}'{{ ", " if not loop.last }}{%- endfor -%})
{%- endmacro %}
