"""Where events come from: one module per webhook source (Alertmanager, GitHub, Jira, PagerDuty,
Zendesk), our own `POST /v1/events`, and what they all share (`common`). Each maps a vendor's
payload to `IssueEvent`s; `worker.gateway.app` registers them."""
