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
        generated_at

    from report_runs

    where
        {{ deal_aging_runs_of_this_invocation() }}
        and report_type = '{{ deal_aging_report_type() }}'
        -- A run failed meanwhile (by sweep, or by the other model) never gets rows again.
        and run_status = 'IN_PROGRESS'

)

select * from runs_of_this_invocation
