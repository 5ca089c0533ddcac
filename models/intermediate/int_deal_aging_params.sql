{%- set constants = deal_aging_plan_constants() -%}

with

report_runs as (

    select * from {{ ref('stg_reporting__report_runs') }}

),

runs_of_this_invocation as (

    select
        run_id,
        tenant_id,
        threshold_days,
        cycle_threshold_days,
        period_start,
        period_end,
        pipeline_id,
        principal_type,
        principal_id,
        stage_id,
        breakdown,
        snoozes,
        aging_calendar,
        threshold_mode,
        changes,
        generated_at

    from report_runs

    where
        {% if constants.run_ids %}
            -- The runs by their ids alone: PostgreSQL then expects as many as there are, and
            -- joins a batch's tenants' deals by hashing, not deal by deal
            -- (docs/decisions/plan-constants.md). replace_runs writes the rows of runs still
            -- IN_PROGRESS only.
            run_id in ({% for run_id in constants.run_ids %}'{{ run_id }}'::uuid{{ ', ' if not loop.last }}{% endfor %})
        {% else %}
            {{ deal_aging_runs_of_this_invocation() }}
            and report_type = '{{ deal_aging_report_type() }}'
            -- A run failed meanwhile (by sweep, or by the other model) never gets rows again.
            and run_status = 'IN_PROGRESS'
        {% endif %}

)

select * from runs_of_this_invocation
