use metrics_exporter_prometheus::PrometheusHandle;
use refundry_app::App;

#[derive(Clone)]
pub struct AppState {
    pub app: App,
    pub metrics: PrometheusHandle,
}
