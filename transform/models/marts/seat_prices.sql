-- The monthly price per seat of each SKU: seeds/sku_prices.csv (yours, empty until you fill it
-- in), or, with var('example_prices') on (the sandbox demo), seeds/sku_prices_example.csv, whose
-- prices are made up.
select sku_part_number, cast(monthly_price as numeric(12, 2)) as monthly_price, currency
from {{ ref('sku_prices') }}
{% if (var('example_prices') | string | lower) == 'true' %}
union all
select sku_part_number, cast(monthly_price as numeric(12, 2)) as monthly_price, currency
from {{ ref('sku_prices_example') }}
where not exists (select 1 from {{ ref('sku_prices') }})
{% endif %}
