select
    run_id,
    tenant_id,
    report_type,
    generated_at,
    period_start,
    period_end,
    status as run_status,
    finished_at,
    error_message,
    dbt_invocation_id,
    cast(input_params ->> 'threshold_days' as integer) as threshold_days,
    cast(input_params ->> 'cycle_threshold_days' as integer) as cycle_threshold_days,
    cast(input_params ->> 'pipeline_id' as uuid) as pipeline_id,
    cast(input_params ->> 'stage_id' as uuid) as stage_id,
    cast(input_params ->> 'principal_type' as varchar(5)) as principal_type,
    cast(input_params ->> 'principal_id' as uuid) as principal_id,
    cast(input_params ->> 'breakdown' as varchar(16)) as breakdown,
    -- Headers written before the parameter existed ran with its default.
    cast(coalesce(input_params ->> 'snoozes', 'ignore') as varchar(8)) as snoozes,
    cast(coalesce(input_params ->> 'aging_calendar', 'calendar') as varchar(8)) as aging_calendar,
    cast(coalesce(input_params ->> 'threshold_mode', 'fixed') as varchar(8)) as threshold_mode,
    cast(coalesce(input_params ->> 'changes', 'ignore') as varchar(8)) as changes

from {{ source('reporting', 'report_run') }}
