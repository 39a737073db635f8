use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use refundry_app::App;

/// Cloned by every extractor and middleware that takes it, so it holds the
/// app behind one `Arc` rather than the app's dozen handles.
#[derive(Clone)]
pub struct AppState {
    pub app: Arc<App>,
    pub metrics: PrometheusHandle,
}
