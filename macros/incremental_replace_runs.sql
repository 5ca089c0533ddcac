{#
    incremental_strategy 'replace_runs' (the per_run models): a report run replaces exactly its own
    rows. It deletes every row of the runs this invocation computes, whatever the new rows hold
    (so a rerun that now finds no deal keeps none of its old rows), then inserts the new rows of
    the runs still IN_PROGRESS.

    The run ids are written into the delete as literals (read from the headers and validated,
    deal_aging_invocation_runs), so PostgreSQL plans the delete from its statistics and the run_id
    index (docs/decisions/plan-constants.md).

    One run's data must never fail another's (docs/decisions/per-run-isolation.md): when the
    insert of all runs fails, each run is inserted on its own, and a run whose rows still fail is
    marked FAILED with the error's message (never its DETAIL, which quotes the failing row). A lock
    or statement timeout is no data problem and fails the model, so every run, at once.
#}
{% macro get_incremental_replace_runs_sql(arg_dict) %}
    {%- set key = arg_dict['unique_key'] -%}
    {%- if key != 'run_id' -%}
        {{ exceptions.raise_compiler_error(
            "incremental_strategy 'replace_runs' needs unique_key 'run_id', got " ~ key ~ "."
        ) }}
    {%- endif -%}
    {%- set run_ids = deal_aging_invocation_runs() | map(attribute='run_id') | list -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set runs_in -%}
        run_id in (
            {%- for run_id in run_ids %}{{ deal_aging_literal(run_id) }}::uuid{{ ', ' if not loop.last }}{% endfor -%}
        )
    {%- endset -%}

    {{ deal_aging_set_timeouts() }}

    {% if run_ids %}
    -- The headers stay locked against sweep while their rows are written.
    select run_id from {{ deal_aging_report_run_relation() }} where {{ runs_in }} for key share;

    delete from {{ target }} where {{ runs_in }};

    do $deal_aging$
    declare
        run uuid;
        -- A run failed meanwhile (by the other model, on its own data) gets no rows again.
        in_progress uuid[] := array(
            select run_id from {{ deal_aging_report_run_relation() }}
            where {{ runs_in }} and status = 'IN_PROGRESS'
        );
    begin
        -- The filter only when a run failed: a second list of run ids would shrink PostgreSQL's
        -- estimate of the runs to one (docs/decisions/plan-constants.md).
        if cardinality(in_progress) = {{ run_ids | length }} then
            insert into {{ target }} ({{ columns }})
            select {{ columns }}
            from {{ arg_dict['temp_relation'] }};
        else
            insert into {{ target }} ({{ columns }})
            select {{ columns }}
            from {{ arg_dict['temp_relation'] }}
            where run_id = any(in_progress);
        end if;
    exception
        when lock_not_available then
            raise;
        when others then
            {% if run_ids | length == 1 -%}
            raise;
            {%- else -%}
            foreach run in array in_progress loop
                begin
                    insert into {{ target }} ({{ columns }})
                    select {{ columns }}
                    from {{ arg_dict['temp_relation'] }}
                    where run_id = run;
                exception
                    when lock_not_available then
                        raise;
                    when others then
                        update {{ deal_aging_report_run_relation() }}
                        set
                            status = 'FAILED',
                            finished_at = clock_timestamp(),
                            error_message = left({{ deal_aging_literal(target.identifier) }} || ': ' || sqlerrm, 2000)
                        where run_id = run and status = 'IN_PROGRESS';
                end;
            end loop;
            {%- endif %}
    end
    $deal_aging$
    {% else %}
    select 1 where false
    {% endif %}
{% endmacro %}

{#
    dbt's incremental materialization first writes the model's rows into a temporary table, then
    hands that table to the strategy. replace_runs reads it exactly once, in its insert, so for
    these models the "temporary table" is a temporary view: the model's query runs once, inside
    the insert, and its rows are written once (docs/decisions/temporary-view.md).
    The view keeps what dbt does with the temporary table: on_schema_change compares its columns
    with the table's, and an enforced contract is checked against the query first, as dbt's
    create_table_as does.
#}
{% macro postgres__get_create_table_as_sql(temporary, relation, sql) %}
    {%- if temporary and config.get('incremental_strategy') == 'replace_runs' -%}
        {%- set sql_header = config.get('sql_header', none) -%}
        {{ sql_header if sql_header is not none }}
        {%- if config.get('contract').enforced %}
            {{ get_assert_columns_equivalent(sql) }}
        {%- endif %}
        {{ deal_aging_set_timeouts() }}
        create temporary view {{ relation }} as (
            {{ sql }}
        );
    {%- else -%}
        {{ default__get_create_table_as_sql(temporary, relation, sql) }}
    {%- endif -%}
{% endmacro %}
