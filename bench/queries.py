"""The GraphQL documents the benchmarks send (and the baseline answers by hand)."""

from __future__ import annotations

MONEY = "{ amount currency }"

LIST_QUERY = f"""
query BenchOrderList($first: Int!) {{
  serviceOrders(first: $first) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{
      id
      number
      status
      createdAt
      client {{ id name phone email }}
      device {{ brand model imei serialNumber problemReported }}
      parts {{ id name quantity unitCost {MONEY} lineTotal {MONEY} }}
      assignedTo {{ id name role }}
      latestHistory {{ fromStatus toStatus note at }}
      total {MONEY}
    }}
  }}
}}
"""

DETAIL_QUERY = f"""
query BenchOrderDetail($id: ID!) {{
  serviceOrder(id: $id) {{
    id
    number
    status
    version
    diagnosis
    warrantyDays
    createdAt
    updatedAt
    estimatedCost {MONEY}
    labourCost {MONEY}
    client {{ id name email phone createdAt }}
    device {{
      brand model imei serialNumber problemReported accessories conditionNotes
    }}
    parts {{ id name quantity unitCost {MONEY} lineTotal {MONEY} createdAt }}
    partsTotal {MONEY}
    total {MONEY}
    assignedTo {{ id name email role }}
    history {{ fromStatus toStatus note at actor {{ id name role }} }}
    internalNotes {{ id body createdAt author {{ id name role }} }}
    availableTransitions
  }}
}}
"""

TRANSITION_MUTATION = """
mutation BenchTransition($input: ServiceOrderTransitionInput!) {
  serviceOrderTransition(input: $input) {
    serviceOrder { id status version }
    userErrors { field message code }
  }
}
"""

LIST_PAGE_SIZE = 50
