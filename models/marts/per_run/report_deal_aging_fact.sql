{{
    config(
        indexes=[
            {'columns': ['tenant_id', 'pipeline_id']},
            {'columns': ['tenant_id', 'principal_type', 'principal_id']},
        ],
    )
}}

with

current_deals as (

    select * from {{ ref('int_deal_aging_current_deals') }}

),

per_stage as (

    select
        run_id,
        tenant_id,
        pipeline_id,
        principal_type,
        principal_id,
        stage_id,
        threshold_days,
        cycle_threshold_days,
        count(*) filter (where is_at_risk) as at_risk_deal_count,
        coalesce(sum(amount) filter (where is_at_risk), 0) as at_risk_amount,
        avg(days_in_stage) as avg_days_in_stage,
        percentile_cont(0.5) within group (order by days_in_stage) as median_days_in_stage,
        count(*) as total_deal_count,
        coalesce(sum(amount), 0) as total_amount,
        count(*) filter (where is_snoozed) as snoozed_deal_count

    from current_deals

    group by
        run_id,
        tenant_id,
        pipeline_id,
        principal_type,
        principal_id,
        stage_id,
        threshold_days,
        cycle_threshold_days

),

final as (

    select
        run_id,
        tenant_id,
        pipeline_id,
        cast(principal_type as varchar(5)) as principal_type,
        principal_id,
        stage_id,
        threshold_days,
        cycle_threshold_days,
        at_risk_deal_count,
        cast(at_risk_amount as numeric(20, 2)) as at_risk_amount,
        cast(avg_days_in_stage as numeric(10, 2)) as avg_days_in_stage,
        cast(median_days_in_stage as numeric(10, 2)) as median_days_in_stage,
        total_deal_count,
        cast(total_amount as numeric(20, 2)) as total_amount,
        cast(cast(at_risk_deal_count as numeric) / total_deal_count as numeric(7, 4)) as percent_at_risk,
        snoozed_deal_count

    from per_stage

)

select * from final
