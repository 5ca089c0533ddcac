{#
    A report run's life inside one dbt invocation.

    on-run-start (deal_aging_begin_runs): validate the vars, make sure report_run exists, then
      either open one IN_PROGRESS header per tenant (the analysts' path: dbt owns those headers),
      or, when run_ids are given (the runner's path), adopt the headers their owner wrote.
      Either way the headers are stamped with this invocation's id, which is how the models find
      the runs they compute (deal_aging_runs_of_this_invocation).
    on-run-end (deal_aging_end_runs): close the headers dbt owns: SUCCEEDED, or FAILED with the
      error and no facts left behind. Headers owned by the runner are left to the runner.

    Both do nothing unless this invocation builds the fact model, so `dbt compile`, `dbt test` or
    `dbt docs generate` never open report runs.
#}

{% macro deal_aging_report_type() %}
    {{ return('deal_aging') }}
{% endmacro %}


{# The tables that hold a run's rows under its run_id; a FAILED run keeps none. #}
{% macro deal_aging_run_keyed_tables() %}
    {{ return(['report_deal_aging_fact', 'report_deal_aging_deal']) }}
{% endmacro %}


{% macro deal_aging_runs_of_this_invocation() %}
    dbt_invocation_id = '{{ invocation_id }}'::uuid
{% endmacro %}


{% macro deal_aging_is_report_invocation() %}
    {{ return(
        execute
        and flags.WHICH in ['run', 'build']
        and 'model.deal_aging.report_deal_aging_fact' in selected_resources
    ) }}
{% endmacro %}


{% macro deal_aging_begin_runs() %}
    {% if not deal_aging_is_report_invocation() %}
        {{ return('') }}
    {% endif %}
    {% set params = deal_aging_report_params() %}
    {% set given_run_ids = deal_aging_given_run_ids() %}
    {% do deal_aging_ensure_report_run() %}
    {% set report_run = deal_aging_report_run_relation() %}

    {% if given_run_ids %}
        {% call statement('deal_aging_adopt_runs', fetch_result=True) %}
            update {{ report_run }}
            set dbt_invocation_id = '{{ invocation_id }}'::uuid
            where report_type = '{{ deal_aging_report_type() }}'
              and run_id in (
                {%- for run_id in given_run_ids %}'{{ run_id }}'::uuid{{ ', ' if not loop.last }}{% endfor -%}
              )
            returning run_id
        {% endcall %}
        {% set adopted = load_result('deal_aging_adopt_runs').table.columns[0].values() | map('string') | list %}
        {% do adapter.commit() %}
        {% for run_id in given_run_ids if run_id not in adopted %}
            {{ exceptions.raise_compiler_error(
                "Invalid var run_id: " ~ run_id ~ " has no deal_aging header in " ~ report_run ~ "."
            ) }}
        {% endfor %}
    {% else %}
        {% set input_params = {} %}
        {% for name in ['threshold_days', 'cycle_threshold_days', 'period_start', 'period_end',
                        'pipeline_id', 'principal_type', 'principal_id', 'stage_id', 'breakdown'] %}
            {% set value = params[name] %}
            {% do input_params.update({name: value.isoformat() if value is not none and value.isoformat is defined else value}) %}
        {% endfor %}
        {% call statement('deal_aging_open_runs') %}
            insert into {{ report_run }} (
                run_id,
                tenant_id,
                report_type,
                generated_at,
                period_start,
                period_end,
                input_params,
                status,
                dbt_invocation_id
            )
            select
                gen_random_uuid(),
                tenants.tenant_id,
                '{{ deal_aging_report_type() }}',
                now(),
                cast({{ deal_aging_literal(params.period_start) }} as timestamptz),
                cast({{ deal_aging_literal(params.period_end) }} as timestamptz),
                '{{ tojson(input_params) | replace("'", "''") }}'::jsonb,
                'IN_PROGRESS',
                '{{ invocation_id }}'::uuid
            from (
                {% if params.tenant_id %}
                select '{{ params.tenant_id }}'::uuid as tenant_id
                {% else %}
                select distinct tenant_id from {{ source('dyno_crm', 'pipeline') }}
                {% endif %}
            ) as tenants
        {% endcall %}
        {% do adapter.commit() %}
    {% endif %}
    {{ return('') }}
{% endmacro %}


{% macro deal_aging_end_runs(results) %}
    {% if not deal_aging_is_report_invocation() or deal_aging_given_run_ids() %}
        {{ return('') }}
    {% endif %}
    {% set failures = [] %}
    {% for result in results if result.status in ['error', 'fail', 'skipped', 'runtime error'] %}
        {% do failures.append(result.node.name ~ ': ' ~ (result.message or result.status)) %}
    {% endfor %}
    {% set report_run = deal_aging_report_run_relation() %}
    {% call statement('deal_aging_close_runs') %}
        {% for identifier in deal_aging_run_keyed_tables() if failures %}
        {% set table = adapter.get_relation(database=target.database, schema=target.schema, identifier=identifier) %}
        {% if table is not none %}
        delete from {{ table }}
        where run_id in (
            select run_id from {{ report_run }} where {{ deal_aging_runs_of_this_invocation() }}
        );
        {% endif %}
        {% endfor %}
        update {{ report_run }}
        set
            status = '{{ "FAILED" if failures else "SUCCEEDED" }}',
            finished_at = clock_timestamp(),
            error_message = {{ "'" ~ dbt.escape_single_quotes(failures | join('; ') | truncate(2000, true)) ~ "'" if failures else 'null' }}
        where {{ deal_aging_runs_of_this_invocation() }}
          and status = 'IN_PROGRESS'
    {% endcall %}
    {% do adapter.commit() %}
    {{ return('') }}
{% endmacro %}

