{#
    report_run is the header table that every report of the CRM shares. This is its one
    definition: the on-run-start hook and the runner (through `dbt run-operation`) both use it.
    It is created only when missing; when another report created it first, only the columns this
    project needs and the table lacks are added. Nothing here drops or rewrites it.

    Statuses: QUEUED (a request waiting for a worker, see `python -m runner submit`), IN_PROGRESS,
    SUCCEEDED, FAILED. Readers that only know the last three lose nothing: a QUEUED run has no rows.
#}

{# dbt quotes a schema without escaping it, and the catalog queries put it in string literals. #}
{% macro deal_aging_report_run_relation() %}
    {% if not modules.re.fullmatch('[A-Za-z_][A-Za-z0-9_]{0,62}', target.schema) %}
        {{ exceptions.raise_compiler_error(
            "Invalid DEAL_AGING_SCHEMA (the dbt profile's target schema): expected a plain schema name"
            ~ " (letters, digits and underscores, not starting with a digit, at most 63)."
        ) }}
    {% endif %}
    {{ return(api.Relation.create(database=target.database, schema=target.schema, identifier='report_run')) }}
{% endmacro %}


{% macro deal_aging_run_statuses() %}
    {{ return(['QUEUED', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED']) }}
{% endmacro %}


{% macro deal_aging_ensure_report_run() %}
    {% set relation = deal_aging_report_run_relation() %}
    {# Columns another report's report_run may lack; all nullable, so adding them rewrites nothing. #}
    {% set optional_columns = {
        'finished_at': 'timestamptz',
        'error_message': 'text',
        'dbt_invocation_id': 'uuid',
        'attempts': 'integer',
        'executor': 'varchar(16)',
    } %}
    {% set status_check -%}
        check (status in ({% for status in deal_aging_run_statuses() %}'{{ status }}'{{ ', ' if not loop.last }}{% endfor %}))
    {%- endset %}
    {% set catalog_query %}
        select column_name, null as constraint_definition, null as index_name
        from information_schema.columns
        where table_schema = '{{ relation.schema }}'
          and table_name = '{{ relation.identifier }}'
        union all
        select null, pg_get_constraintdef(oid), null
        from pg_constraint
        where conname = 'ck_report_run_status'
          and conrelid = to_regclass('{{ relation.render() | replace("'", "''") }}')
        union all
        select null, null, indexname
        from pg_indexes
        where schemaname = '{{ relation.schema }}'
          and tablename = '{{ relation.identifier }}'
        union all
        select null, null, tgname
        from pg_trigger
        where tgrelid = to_regclass('{{ relation.render() | replace("'", "''") }}')
    {% endset %}
    {% set catalog = run_query(catalog_query) %}
    {% set existing = catalog.columns[0].values() | reject('none') | list %}
    {% set status_checks = catalog.columns[1].values() | reject('none') | list %}
    {% set named_objects = catalog.columns[2].values() | reject('none') | list %}
    {% set missing = [] %}
    {% for column in optional_columns if column not in existing %}
        {% do missing.append(column) %}
    {% endfor %}
    {# Our own status check, created by an earlier version without QUEUED, is widened; a table
       another report created keeps whatever checks it has. #}
    {% set outdated_check = status_checks and 'QUEUED' not in status_checks[0] %}
    {% set objects_missing = ['ix_report_run_dbt_invocation', 'ix_report_run_tenant_generated', 'ix_report_run_queued',
                            'trg_report_run_delete_deal_aging_deals'] | reject("in", named_objects) | list %}
    {% if existing and not missing and not outdated_check and not objects_missing %}
        {{ return(false) }}
    {% endif %}

    {% call statement('deal_aging_ensure_report_run') %}
        -- Concurrent first runs would race on the DDL; the lock makes them take turns.
        select pg_advisory_xact_lock(hashtext('deal_aging.report_run'));

        {# Only when missing: `create schema if not exists` needs CREATE on the database even when the schema exists. #}{% if not adapter.check_schema_exists(relation.database, relation.schema) %}create schema if not exists {{ adapter.quote(relation.schema) }};{% endif %}

        create table if not exists {{ relation }} (
            run_id uuid primary key,
            tenant_id uuid not null,
            report_type varchar(64) not null,
            generated_at timestamptz not null,
            period_start timestamptz,
            period_end timestamptz,
            input_params jsonb not null default '{}'::jsonb,
            status varchar(20) not null constraint ck_report_run_status {{ status_check }},
            {% for column, data_type in optional_columns.items() %}
            {{ column }} {{ data_type }}{{ ',' if not loop.last }}
            {% endfor %}
        );

        {% for column, data_type in optional_columns.items() %}
        alter table {{ relation }} add column if not exists {{ column }} {{ data_type }};
        {% endfor %}

        {% if outdated_check %}
        -- NOT VALID, then VALIDATE: the old statuses are a subset, and validating this way does not
        -- block writers while it reads the table.
        alter table {{ relation }} drop constraint ck_report_run_status;
        alter table {{ relation }} add constraint ck_report_run_status {{ status_check }} not valid;
        alter table {{ relation }} validate constraint ck_report_run_status;
        {% endif %}

        -- Finds the runs of one dbt invocation without reading the other reports' headers.
        create index if not exists ix_report_run_dbt_invocation
            on {{ relation }} (dbt_invocation_id)
            where dbt_invocation_id is not null;

        -- The latest runs of a tenant, for `runner list` and the latest-run view.
        create index if not exists ix_report_run_tenant_generated
            on {{ relation }} (tenant_id, report_type, generated_at desc);

        -- The queue of requests, oldest first, for the workers.
        create index if not exists ix_report_run_queued
            on {{ relation }} (report_type, generated_at)
            where status = 'QUEUED';

        -- Deleting a header deletes its deal list, as the fact table's foreign key does for its
        -- facts. The deal list has no foreign key: checked row by row it would double the cost of
        -- a big tenant's run, while this costs only the rare delete of a header
        -- (docs/decisions/deal-list-without-foreign-key.md).
        -- One delete per header, so each goes through the deal list's run_id index.
        create or replace function {{ adapter.quote(relation.schema) }}.deal_aging_delete_deals_of_deleted_runs()
        returns trigger
        language plpgsql
        as $$
        declare
            deleted_run_id uuid;
        begin
            if to_regclass('{{ adapter.quote(relation.schema) }}.report_deal_aging_deal') is null then
                return null;
            end if;
            for deleted_run_id in select run_id from deleted_runs loop
                delete from {{ adapter.quote(relation.schema) }}.report_deal_aging_deal
                where run_id = deleted_run_id;
            end loop;
            return null;
        end
        $$;

        create or replace trigger trg_report_run_delete_deal_aging_deals
            after delete on {{ relation }}
            referencing old table as deleted_runs
            for each statement
            execute function {{ adapter.quote(relation.schema) }}.deal_aging_delete_deals_of_deleted_runs();
    {% endcall %}
    {% do adapter.commit() %}
    {{ return(true) }}
{% endmacro %}
