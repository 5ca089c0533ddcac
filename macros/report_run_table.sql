{#
    report_run is the header table that every report of the CRM shares. This is its one
    definition: the on-run-start hook and the runner (through `dbt run-operation`) both use it.
    It is created only when missing; when another report created it first, only the columns this
    project needs and the table lacks are added. Nothing here drops or rewrites it.
#}

{% macro deal_aging_report_run_relation() %}
    {{ return(api.Relation.create(database=target.database, schema=target.schema, identifier='report_run')) }}
{% endmacro %}


{% macro deal_aging_ensure_report_run() %}
    {% set relation = deal_aging_report_run_relation() %}
    {# Columns another report's report_run may lack; all nullable, so adding them rewrites nothing. #}
    {% set optional_columns = {
        'finished_at': 'timestamptz',
        'error_message': 'text',
        'dbt_invocation_id': 'uuid',
    } %}
    {% set catalog_query %}
        select column_name
        from information_schema.columns
        where table_schema = '{{ relation.schema }}'
          and table_name = '{{ relation.identifier }}'
    {% endset %}
    {% set existing = run_query(catalog_query).columns[0].values() | list %}
    {% set missing = [] %}
    {% for column in optional_columns if column not in existing %}
        {% do missing.append(column) %}
    {% endfor %}
    {% if existing and not missing %}
        {{ return(false) }}
    {% endif %}

    {% call statement('deal_aging_ensure_report_run') %}
        -- Concurrent first runs would race on the DDL; the lock makes them take turns.
        select pg_advisory_xact_lock(hashtext('deal_aging.report_run'));

        create schema if not exists {{ adapter.quote(relation.schema) }};

        create table if not exists {{ relation }} (
            run_id uuid primary key,
            tenant_id uuid not null,
            report_type varchar(64) not null,
            generated_at timestamptz not null,
            period_start timestamptz,
            period_end timestamptz,
            input_params jsonb not null default '{}'::jsonb,
            status varchar(20) not null
                constraint ck_report_run_status check (status in ('IN_PROGRESS', 'SUCCEEDED', 'FAILED')),
            {% for column, data_type in optional_columns.items() %}
            {{ column }} {{ data_type }}{{ ',' if not loop.last }}
            {% endfor %}
        );

        {% for column, data_type in optional_columns.items() %}
        alter table {{ relation }} add column if not exists {{ column }} {{ data_type }};
        {% endfor %}

        -- Finds the runs of one dbt invocation without reading the other reports' headers.
        create index if not exists ix_report_run_dbt_invocation
            on {{ relation }} (dbt_invocation_id)
            where dbt_invocation_id is not null;

        -- The latest runs of a tenant, for `runner list` and the latest-run view.
        create index if not exists ix_report_run_tenant_generated
            on {{ relation }} (tenant_id, report_type, generated_at desc);
    {% endcall %}
    {% do adapter.commit() %}
    {{ return(true) }}
{% endmacro %}
