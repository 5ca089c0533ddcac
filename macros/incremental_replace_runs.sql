{#
    incremental_strategy 'replace_runs' (the per_run models): a report run replaces exactly its own
    rows. It deletes every row of the runs this invocation computes, whatever the new rows hold
    (so a rerun that now finds no deal keeps none of its old rows), then inserts the new rows.

    The run ids are written into the delete as literals (read from the headers and validated,
    deal_aging_invocation_runs). PostgreSQL then estimates a new run's rows from the statistics
    (none) and deletes through the table's run_id index. Read from a subquery or an array the ids
    are unknown when the delete is planned, and while the history holds few runs of many rows
    each, the estimate makes it scan the whole table: 0.5 s over 10 runs of a 300,000-deal
    tenant, growing with every run (measured).
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

    delete from {{ arg_dict['target_relation'] }}
    where
    {%- if run_ids %}
        run_id in (
            {%- for run_id in run_ids %}{{ deal_aging_literal(run_id) }}::uuid{{ ', ' if not loop.last }}{% endfor -%}
        )
    {%- else %}
        false
    {%- endif %};

    insert into {{ arg_dict['target_relation'] }} ({{ columns }})
    select {{ columns }}
    from {{ arg_dict['temp_relation'] }}
{% endmacro %}
