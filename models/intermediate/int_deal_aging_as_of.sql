with

params as (

    select * from {{ ref('int_deal_aging_params') }}

),

final as (

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
        -- generated_at is fixed once per run and kept in its header, so a rerun computes the same ages.
        coalesce(period_end, generated_at) as as_of_ts

    from params

)

select * from final
