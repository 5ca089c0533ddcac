{{ deal_aging_deal_list_mismatches(ref('report_deal_aging_fact'), ref('report_deal_aging_deal')) }}
