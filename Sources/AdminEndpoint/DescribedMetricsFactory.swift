import CoreMetrics
import Prometheus

/// swift-prometheus' metrics factory, but every family made through swift-metrics gets its
/// `# HELP` line (from ``MetricHelp``) and every histogram buckets that fit what it measures.
///
/// Why: swift-prometheus' own factory registers every swift-metrics metric with an empty help
/// text (and refuses a family registered twice with two texts), and gives every timer the same
/// buckets, whose first was 5 ms: runtime-manager's requests take 4–67 µs, so every observation
/// landed in the first bucket.
struct DescribedMetricsFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry
    /// For `destroy*` (it only unregisters).
    let base: PrometheusMetricsFactory

    private func descriptor(_ label: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: label, unitName: "", helpText: MetricHelp.text(for: label))
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return registry.makeGauge(descriptor: descriptor(label), labels: dimensions) }
        return registry.makeValueHistogram(
            descriptor: descriptor(label), labels: dimensions, buckets: MetricHelp.defaultValueBuckets)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        registry.makeDurationHistogram(
            descriptor: descriptor(label), labels: dimensions, buckets: MetricHelp.durationBuckets(for: label))
    }

    func destroyCounter(_ handler: any CounterHandler) { base.destroyCounter(handler) }
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) { base.destroyFloatingPointCounter(handler) }
    func destroyRecorder(_ handler: any RecorderHandler) { base.destroyRecorder(handler) }
    func destroyMeter(_ handler: any MeterHandler) { base.destroyMeter(handler) }
    func destroyTimer(_ handler: any TimerHandler) { base.destroyTimer(handler) }
}

/// The help text and buckets of every metric the libraries count through swift-metrics. One
/// table, beside the README's metrics table it mirrors; `AdminEndpointProcessTests` checks that
/// every family on /metrics has its `# HELP`.
public enum MetricHelp {
    static let texts: [String: String] = [
        "repeater_sessions_total":
            "Client connections: accepted, or closed at once (no link up, over --max-sessions, no valid PROXY header).",
        "repeater_sessions_other_loop_total": "Sessions served on another event loop's link because their own loop's link was down.",
        "repeater_sessions_closed_total": "Accepted sessions that ended, by cause.",
        "repeater_link_redials_total": "Dials after a failed dial or a dropped link.",
        "repeater_link_rtt_seconds": "Round trips of the links' keep-alive pings.",
        "repeater_streams_reset_total": "Streams reset by the repeater (local) or by the runtime manager (peer).",
        "repeater_link_failures_total": "Links the repeater closed because of the runtime manager, by reason.",
        "runtime_manager_requests_total": "Requests answered, by type and result.",
        "runtime_manager_request_seconds": "Time to answer a request (policy check and store work, not the network).",
        "runtime_manager_tls_handshake_failures_total": "Failed TLS handshakes, by reason.",
        "runtime_manager_link_failures_total": "Links the runtime manager closed because of the repeater, by reason.",
    ]

    /// The help for `label`, or a sentence that says none was written (the test catches it).
    static func text(for label: String) -> String {
        texts[label] ?? "\(label) (no help text: add it to MetricHelp)"
    }

    /// Request times: 10 µs to 10 s (a policy hash takes microseconds, a 64 MiB write tens of
    /// milliseconds); ping round trips: 25 µs (loopback) to 10 s.
    static func durationBuckets(for label: String) -> [Duration] {
        let microseconds: [Int64]
        switch label {
        case "runtime_manager_request_seconds":
            microseconds = [
                10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
                1_000_000, 2_500_000, 10_000_000,
            ]
        default:
            microseconds = [
                25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
                1_000_000, 2_500_000, 10_000_000,
            ]
        }
        return microseconds.map { .microseconds($0) }
    }

    static let defaultValueBuckets: [Double] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000]
}
