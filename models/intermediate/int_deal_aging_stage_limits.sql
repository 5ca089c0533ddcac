with

runs as (

    select * from {{ ref('int_deal_aging_as_of') }}

),

deal_stage_states as (

    select * from {{ ref('stg_dyno_crm__deal_stage_states') }}

),

completed_visits as (

    select
        runs.run_id,
        deal_stage_states.pipeline_stage_id as stage_id,
        {{ days_elapsed('deal_stage_states.stage_entered_at', 'deal_stage_states.stage_exited_at') }} as visit_days

    from runs

    inner join deal_stage_states
        on runs.tenant_id = deal_stage_states.tenant_id

    where
        -- Only runs that learn their limits need the year of visits.
        runs.threshold_mode != 'fixed'
        and {{ deal_aging_completed_in_year_before(
            'deal_stage_states.stage_entered_at', 'deal_stage_states.stage_exited_at', 'runs.as_of_ts'
        ) }}

),

final as (

    select
        run_id,
        stage_id,
        {{ deal_aging_visit_statistics('visit_days') }}

    from completed_visits

    group by
        run_id,
        stage_id

)

select * from final
