{{
    config(
        materialized='concurrent_view',
    )
}}

with

changes as (

    select * from {{ ref('report_deal_aging_change') }}

),

report_runs as (

    select * from {{ ref('stg_reporting__report_runs') }}

),

counted as (

    select
        changes.run_id,
        changes.tenant_id,
        changes.pipeline_id,
        changes.stage_id,
        count(*) filter (where changes.change_type = 'NEWLY_AT_RISK') as newly_at_risk_count,
        count(*) filter (where changes.change_type = 'STILL_AT_RISK') as still_at_risk_count,
        count(*) filter (where changes.change_type = 'RECOVERED') as recovered_count,
        count(*) filter (where changes.recovery_reason = 'WON') as recovered_won_count,
        count(*) filter (where changes.recovery_reason = 'LOST') as recovered_lost_count,
        count(*) filter (where changes.recovery_reason = 'MOVED_STAGE') as recovered_moved_stage_count,
        count(*) filter (where changes.recovery_reason = 'BACK_UNDER_LIMIT') as recovered_back_under_limit_count,
        count(*) filter (where changes.recovery_reason = 'OUT_OF_SCOPE') as recovered_out_of_scope_count,
        count(*) filter (where changes.recovery_reason = 'SNOOZED') as recovered_snoozed_count

    from changes

    group by
        changes.run_id,
        changes.tenant_id,
        changes.pipeline_id,
        changes.stage_id

),

final as (

    select
        counted.tenant_id,
        counted.pipeline_id,
        counted.stage_id,
        counted.run_id,
        report_runs.generated_at,
        counted.newly_at_risk_count,
        counted.still_at_risk_count,
        counted.recovered_count,
        counted.recovered_won_count,
        counted.recovered_lost_count,
        counted.recovered_moved_stage_count,
        counted.recovered_back_under_limit_count,
        counted.recovered_out_of_scope_count,
        counted.recovered_snoozed_count

    from counted

    inner join report_runs
        on counted.run_id = report_runs.run_id

    -- A run's changes show once it has SUCCEEDED, as its facts do.
    where report_runs.run_status = 'SUCCEEDED'

)

select * from final
