"""The service's HTTP routes: one spelling for the service, its guards, Locust and the tools."""

PREDICT_ROUTE = "/predict_titanic"
BATCH_ROUTE = "/predict_titanic_batch"
FEEDBACK_ROUTE = "/feedback"
HEALTH_ROUTE = "/health"
MODEL_INFO_ROUTE = "/model_info"
MODEL_CARD_ROUTE = "/model_card"
RELOAD_ROUTE = "/reload"
READY_ROUTE = "/readyz"  # BentoML's own
METRICS_ROUTE = "/metrics"  # BentoML's own
