{#
    A report run's life inside one dbt invocation.

    on-run-start (deal_aging_begin_runs): validate the vars, make sure report_run exists, then
      open one IN_PROGRESS header per tenant (the analysts' path), adopt the headers the runner
      wrote (DEAL_AGING_RUN_IDS), or take finished runs to recompute (the var run_id). Every
      header is stamped with this invocation's id, which is how the models find their runs
      (deal_aging_runs_of_this_invocation).
    on-run-end (deal_aging_end_runs): close every run of the invocation, whoever opened it:
      SUCCEEDED, or FAILED with the reason and no rows (docs/architecture.md).

    Both do nothing unless this invocation builds the run-keyed models, so `dbt compile`,
    `dbt test` or `dbt docs generate` never open report runs.
#}

{% macro deal_aging_report_type() %}
    {{ return('deal_aging') }}
{% endmacro %}


{# The tables that hold a run's rows under its run_id; a FAILED run keeps none. #}
{% macro deal_aging_run_keyed_tables() %}
    {{ return(['report_deal_aging_fact', 'report_deal_aging_deal', 'report_deal_aging_change']) }}
{% endmacro %}


{# The one run-keyed model an invocation may leave out: when none of its runs tracks changes. #}
{% macro deal_aging_change_model() %}
    {{ return('model.deal_aging.report_deal_aging_change') }}
{% endmacro %}


{% macro deal_aging_runs_of_this_invocation() %}
    dbt_invocation_id = '{{ invocation_id }}'::uuid
{% endmacro %}


{% macro deal_aging_is_report_invocation() %}
    {{ return(
        execute
        and flags.WHICH in ['run', 'build']
        and (selected_resources | select('in', deal_aging_run_keyed_models()) | list | length > 0)
    ) }}
{% endmacro %}


{# The run-keyed models' unique ids: a report invocation builds all of them or none. #}
{% macro deal_aging_run_keyed_models() %}
    {% set ids = [] %}
    {% for table in deal_aging_run_keyed_tables() %}
        {% do ids.append('model.deal_aging.' ~ table) %}
    {% endfor %}
    {{ return(ids) }}
{% endmacro %}


{#
    The runner's setup invocation (DEAL_AGING_SETUP_ONLY=1) builds the report's relations and
    computes no run.
#}
{% macro deal_aging_is_setup_only() %}
    {{ return(env_var('DEAL_AGING_SETUP_ONLY', '') == '1') }}
{% endmacro %}


{% macro deal_aging_begin_runs() %}
    {% if not deal_aging_is_report_invocation() %}
        {{ return('') }}
    {% endif %}
    {% for model in deal_aging_run_keyed_models()
        if model not in selected_resources and model != deal_aging_change_model() %}
        {{ exceptions.raise_compiler_error(
            "A report run writes its facts and its deal list together: select every run-keyed model"
            ~ " (--select tag:report_run) or neither; " ~ model.split('.')[-1] ~ " is not selected."
        ) }}
    {% endfor %}
    {% set given_run_ids = deal_aging_given_run_ids() %}
    {% set params = deal_aging_report_params() %}
    {% if deal_aging_change_model() not in selected_resources
        and deal_aging_tracks_changes(given_run_ids, params) %}
        {{ exceptions.raise_compiler_error(
            "A run of this invocation tracks changes (changes: track): select report_deal_aging_change"
            ~ " too (--select tag:report_run); no run was opened."
        ) }}
    {% endif %}
    {% set pending = deal_aging_pending_migrations() %}
    {% if pending %}
        {{ exceptions.raise_compiler_error(
            "The report's setup in " ~ deal_aging_report_run_relation().schema ~ " is not up to date ("
            ~ pending | length ~ " migration(s) pending): run `dbt run-operation deal_aging_setup` or"
            ~ " `python -m runner setup` first."
        ) }}
    {% endif %}
    {% if deal_aging_is_setup_only() %}
        {{ return('') }}
    {% endif %}
    {% set report_run = deal_aging_report_run_relation() %}
    {% set runner_owned = deal_aging_var('run_id') in [none, ''] %}

    {% if given_run_ids %}
        {# The runner's headers are IN_PROGRESS already and it holds their liveness locks. A
           recompute asked with the var run_id takes a finished run that nobody executes now. #}
        {% call statement('deal_aging_adopt_runs', fetch_result=True) %}
            {{ deal_aging_set_timeouts() }}
            update {{ report_run }}
            set
                dbt_invocation_id = '{{ invocation_id }}'::uuid,
                status = 'IN_PROGRESS',
                finished_at = null,
                error_message = null
                {%- if not runner_owned %},
                executor = 'dbt'
                {%- endif %}
            where
                report_type = '{{ deal_aging_report_type() }}'
                and run_id in (
                    {%- for run_id in given_run_ids %}'{{ run_id }}'::uuid{{ ', ' if not loop.last }}{% endfor -%}
                )
                {% if runner_owned %}
                and status = 'IN_PROGRESS'
                {% else %}
                and status in ('SUCCEEDED', 'FAILED')
                and {{ deal_aging_nobody_executes('run_id') }}
                {% endif %}
            returning run_id
        {% endcall %}
        {% set adopted = load_result('deal_aging_adopt_runs').table.columns[0].values() | map('string') | list %}
        {% for run_id in given_run_ids if run_id not in adopted %}
            {{ exceptions.raise_compiler_error(
                "Invalid var run_id: " ~ run_id ~ " is not a finished deal_aging run that could be recomputed"
                ~ " now (no such header, or it is queued or being computed)."
            ) }}
        {% endfor %}
        {% do adapter.commit() %}
    {% else %}
        {% set input_params = {'source_schema': deal_aging_var('source_schema')} %}
        {% for name in ['threshold_days', 'cycle_threshold_days', 'period_start', 'period_end',
                        'pipeline_id', 'principal_type', 'principal_id', 'stage_id', 'breakdown',
                        'snoozes', 'aging_calendar', 'threshold_mode', 'changes'] %}
            {% set value = params[name] %}
            {% do input_params.update({name: value.isoformat() if value is not none and value.isoformat is defined else value}) %}
        {% endfor %}
        {% call statement('deal_aging_open_runs', fetch_result=True) %}
            {{ deal_aging_set_timeouts() }}
            insert into {{ report_run }} (
                run_id,
                tenant_id,
                report_type,
                generated_at,
                period_start,
                period_end,
                input_params,
                status,
                dbt_invocation_id,
                executor
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
                '{{ invocation_id }}'::uuid,
                'dbt'
            from (
                select distinct tenant_id from {{ source('dyno_crm', 'pipeline') }}
                {% if params.tenant_id %}
                where tenant_id = '{{ params.tenant_id }}'::uuid
                {% endif %}
            ) as tenants
            returning run_id
        {% endcall %}
        {% if params.tenant_id and load_result('deal_aging_open_runs').table | length == 0 %}
            {{ exceptions.raise_compiler_error(
                "Invalid var tenant_id: " ~ params.tenant_id ~ " has no pipeline in "
                ~ source('dyno_crm', 'pipeline') ~ "; no run was opened."
            ) }}
        {% endif %}
        {% do adapter.commit() %}
    {% endif %}
    {{ return('') }}
{% endmacro %}


{#
    True when nobody executes the run now: the runner and the workers hold this advisory lock for
    a whole run (the key is runner/store/'s liveness_key). The try-lock lets go at commit.
#}
{# Whether a run about to be opened (params) or adopted (given_run_ids) tracks changes. #}
{% macro deal_aging_tracks_changes(given_run_ids, params) %}
    {% if not given_run_ids %}
        {{ return(params.changes == 'track') }}
    {% endif %}
    {% set query %}
        select count(*) from {{ deal_aging_report_run_relation() }}
        where
            run_id in ({%- for run_id in given_run_ids %}'{{ run_id }}'::uuid{{ ', ' if not loop.last }}{% endfor -%})
            and coalesce(input_params ->> 'changes', 'ignore') = 'track'
    {% endset %}
    {{ return(run_query(query).columns[0].values()[0] > 0) }}
{% endmacro %}


{% macro deal_aging_nobody_executes(run_id_sql) %}
    pg_try_advisory_xact_lock(hashtextextended({{ run_id_sql }}::text, 0))
{% endmacro %}


{#
    on-run-end closes every run of the invocation, whoever opened it: FAILED with the reason when
    a run-keyed model failed as a whole, or the run's deal list does not add up to its facts;
    FAILED runs keep no rows; every other run SUCCEEDED. One transaction, so no reader ever sees
    a SUCCEEDED run whose facts and deal list disagree. A failed view fails no run.
#}
{% macro deal_aging_end_runs(results) %}
    {% if not deal_aging_is_report_invocation() or deal_aging_is_setup_only() %}
        {{ return('') }}
    {% endif %}
    {# The same error of both models is told once, naming both. #}
    {% set models_by_error = {} %}
    {% for result in results
        if result.node.resource_type == 'model' and 'report_run' in result.node.tags
        and result.status in ['error', 'fail', 'skipped', 'runtime error'] %}
        {% set error = deal_aging_error_summary(result.message or result.status) %}
        {% do models_by_error.update({error: models_by_error.get(error, []) + [result.node.name]}) %}
    {% endfor %}
    {% set failures = [] %}
    {% for error, models in models_by_error.items() %}
        {% do failures.append(models | join(', ') ~ ': ' ~ error) %}
    {% endfor %}
    {% set report_run = deal_aging_report_run_relation() %}
    {% set this_invocation -%}
        select run_id from {{ report_run }}
        where {{ deal_aging_runs_of_this_invocation() }} and report_type = '{{ deal_aging_report_type() }}'
    {%- endset %}
    {% set tables = [] %}
    {% for identifier in deal_aging_run_keyed_tables() %}
        {% set table = adapter.get_relation(database=target.database, schema=target.schema, identifier=identifier) %}
        {% if table is not none %}
            {% do tables.append(table) %}
        {% endif %}
    {% endfor %}
    {% call statement('deal_aging_close_runs') %}
        {{ deal_aging_set_timeouts() }}
        {% if failures %}
        update {{ report_run }}
        set
            status = 'FAILED',
            finished_at = clock_timestamp(),
            error_message = {{ deal_aging_literal(failures | join('; ') | truncate(2000, true)) }}
        where run_id in ({{ this_invocation }}) and status = 'IN_PROGRESS';
        {% elif tables | length >= 2 %}
        update {{ report_run }}
        set
            status = 'FAILED',
            finished_at = clock_timestamp(),
            error_message = 'report_deal_aging_deal: the deal list does not add up to the facts'
        where
            run_id in ({{ this_invocation }})
            and status = 'IN_PROGRESS'
            and run_id in (
                select mismatches.run_id
                from ({{ deal_aging_deal_list_mismatches(tables[0], tables[1], this_invocation) }}) as mismatches
            );
        {% endif %}
        {{ deal_aging_delete_rows_of_failed_runs(tables, this_invocation) }}
        update {{ report_run }}
        set
            status = 'SUCCEEDED',
            finished_at = clock_timestamp(),
            error_message = null
        where run_id in ({{ this_invocation }}) and status = 'IN_PROGRESS';
    {% endcall %}
    {% do adapter.commit() %}
    {# A run failed by its own data leaves its models green: dbt's exit status still tells. #}
    {% set failed = run_query("select count(*) from " ~ report_run ~ " where run_id in (" ~ this_invocation ~ ") and status = 'FAILED'") %}
    {% if failed.columns[0].values()[0] > 0 %}
        {{ exceptions.raise_compiler_error(
            failed.columns[0].values()[0] ~ " report run(s) of this invocation FAILED: see report_run.error_message"
        ) }}
    {% endif %}
    {{ return('') }}
{% endmacro %}


{#
    The rows of the invocation's FAILED runs go. A table locked elsewhere is left alone: the run
    could not have written to it while it was locked, and waiting would only fail the closing.
#}
{% macro deal_aging_delete_rows_of_failed_runs(tables, this_invocation) %}
    {% for table in tables %}
    do $deal_aging$
    begin
        delete from {{ table }}
        where run_id in (
            select run_id from {{ deal_aging_report_run_relation() }}
            where run_id in ({{ this_invocation }}) and status = 'FAILED'
        );
    exception
        when lock_not_available then
            null;
    end
    $deal_aging$;
    {% endfor %}
{% endmacro %}


{#
    A failure as one line for report_run.error_message: the database's own message, without dbt's
    frame and macro stack, the SQL excerpt (LINE n:), the DETAIL that quotes a failing row, or
    file paths.
#}
{% macro deal_aging_error_summary(message) %}
    {% set state = namespace(kept=[], done=false) %}
    {% for line in (message | string).splitlines() %}
        {% set text = line.strip() %}
        {% if text.startswith(('LINE ', 'DETAIL:', 'HINT:', 'CONTEXT:', 'QUERY:', 'compiled code at', 'compiled Code at', '> in macro', '> called by')) %}
            {% set state.done = true %}
        {% endif %}
        {% if text and not state.done and not modules.re.match('^(Database|Compilation|Runtime) Error in ', text) %}
            {% do state.kept.append(text) %}
        {% endif %}
    {% endfor %}
    {% set summary = modules.re.sub('\\S*/\\S+', '', state.kept | join(' ')) %}
    {{ return(modules.re.sub('\\s+', ' ', summary).strip() or 'failed') }}
{% endmacro %}
