select
    id as pipeline_id,
    tenant_id,
    name as pipeline_name,
    created_at as pipeline_created_at

from {{ source('dyno_crm', 'pipeline') }}
