{#
    The report's optional tables (per-stage limits, snoozed deals, the tenants' working calendars
    and holidays), which the CRM or an analyst fills; reports work without them.
    `dbt run-operation deal_aging_create_optional_tables` (or `deal_aging_setup` with
    `--args '{optional_tables: true}'`, or `python -m runner setup --optional-tables`) creates
    every missing one; none is ever dropped or altered.
#}
{% macro deal_aging_create_optional_tables() %}
    {% do deal_aging_create_stage_threshold_table() %}
    {# Snoozed deals: while snoozed_until is after a run's as-of instant, the deal is not at risk. #}
    {% do deal_aging_create_optional_table('deal_aging_snooze', "
        tenant_id uuid not null,
        deal_id uuid not null,
        snoozed_until timestamptz not null,
        reason text,
        snoozed_by text,
        created_at timestamptz not null default now(),
        primary key (tenant_id, deal_id)
    ") %}
    {# The working week of business-day aging: ISO day numbers, 1 = Monday. #}
    {% do deal_aging_create_optional_table('deal_aging_tenant_calendar', "
        tenant_id uuid primary key,
        time_zone text not null default 'UTC',
        weekend_days smallint[] not null default '{6,7}'
            constraint ck_tenant_calendar_weekend_days check (weekend_days <@ '{1,2,3,4,5,6,7}')
    ") %}
    {% do deal_aging_create_optional_table('deal_aging_holiday', "
        tenant_id uuid not null,
        holiday_date date not null,
        name text,
        primary key (tenant_id, holiday_date)
    ") %}
{% endmacro %}


{# Per-stage limits: a stage with a row is at risk past its own limit instead of the run's. #}
{% macro deal_aging_create_stage_threshold_table() %}
    {% do deal_aging_create_optional_table('deal_aging_stage_threshold', "
        tenant_id uuid not null,
        pipeline_stage_id uuid not null,
        threshold_days integer not null constraint ck_stage_threshold_days check (threshold_days >= 0),
        primary key (tenant_id, pipeline_stage_id)
    ") %}
{% endmacro %}


{% macro deal_aging_create_optional_table(identifier, columns) %}
    {% set relation = api.Relation.create(
        database=target.database, schema=target.schema, identifier=identifier
    ) %}
    {# `create schema if not exists` needs CREATE on the database even when the schema exists. #}
    {% set schema_exists = adapter.check_schema_exists(relation.database, relation.schema) %}
    {% call statement('deal_aging_create_optional_table') %}
        {% if not schema_exists %}
        create schema if not exists {{ adapter.quote(relation.schema) }};
        {% endif %}
        create table if not exists {{ relation }} ({{ columns }});
    {% endcall %}
    {% do adapter.commit() %}
{% endmacro %}
