select
    id as deal_stage_state_id,
    tenant_id,
    deal_id,
    pipeline_stage_id,
    entered_at as stage_entered_at,
    exited_at as stage_exited_at,
    is_current

from {{ source('dyno_crm', 'deal_pipeline_stage_state') }}
