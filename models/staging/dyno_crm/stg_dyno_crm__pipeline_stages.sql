select
    id as pipeline_stage_id,
    tenant_id,
    pipeline_id,
    name as stage_name,
    display_order as stage_display_order,
    stage_state

from {{ source('dyno_crm', 'pipeline_stage') }}
