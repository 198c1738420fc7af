//! Logs (JSON or pretty, to stdout) and, when configured, span export over OTLP.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, Settings};

/// What must be flushed before the process exits.
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered. Call outside the async runtime: the exporter
    /// uses a blocking HTTP client.
    pub fn shutdown(self) {
        if let Some(provider) = self.traces
            && let Err(error) = provider.shutdown()
        {
            eprintln!("warning: flushing exported spans failed: {error}");
        }
    }
}

/// Installs the global subscriber: `RUST_LOG` filtering, one JSON object per line or
/// human-readable text on stdout, and with `OTEL_EXPORTER_OTLP_ENDPOINT` every span
/// (requests, RPCs, jobs, with their request ids) exported in batches from a background
/// thread. Call before starting the async runtime.
pub fn init(settings: &Settings) -> Telemetry {
    let filter = EnvFilter::builder()
        .parse(&settings.telemetry.log_filter)
        .unwrap_or_else(|_| EnvFilter::new(crate::config::DEFAULT_LOG_FILTER));
    let logs = match settings.telemetry.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer().boxed(),
    };
    let traces = settings
        .telemetry
        .otlp_endpoint
        .as_ref()
        .and_then(
            |endpoint| match exporter(endpoint.expose(), &settings.telemetry.service_name) {
                Ok(provider) => Some(provider),
                Err(error) => {
                    eprintln!("warning: span export is off: {error}");
                    None
                }
            },
        );
    let export = traces.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(settings.telemetry.service_name.clone()))
    });
    // Already installed (a test harness did it): keep that one.
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(export)
        .with(filter)
        .try_init();

    // Panics become log lines with the request's span, not bare stderr text.
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(%location, panic = %info, "panic");
    }));
    Telemetry { traces }
}

fn exporter(
    endpoint: &str,
    service_name: &str,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{endpoint}/v1/traces"))
        .with_timeout(std::time::Duration::from_secs(5))
        .build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_owned())
                .build(),
        )
        .build())
}
