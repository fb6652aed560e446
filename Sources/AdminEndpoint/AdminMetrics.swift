import CoreMetrics
import Prometheus
import Synchronization

/// The metrics of a daemon started with `--admin`: swift-metrics answered by swift-prometheus'
/// registry, plus gauges read from the daemon's live state at each scrape.
///
/// Libraries count through swift-metrics only (`Counter(label:dimensions:)`), so without
/// `--admin` nothing is bootstrapped and every count is swift-metrics' no-op. Gauges of state the
/// daemon already keeps (sessions open, links up) cost nothing on the data path: they are set
/// from their readers just before the registry is emitted.
public final class AdminMetrics: Sendable {
    private let registry: PrometheusCollectorRegistry
    private let scrapeTimeGauges = Mutex<[(Prometheus.Gauge, @Sendable () -> Int)]>([])

    private init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// Bootstraps swift-metrics with a Prometheus registry. Once per process, before the servers
    /// that count are created (their counters bind to the backend then).
    public static func bootstrapPrometheus() -> AdminMetrics {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return AdminMetrics(registry: registry)
    }

    /// A gauge named `name` whose value is `read()` at each scrape.
    public func gauge(_ name: String, help: String, read: @escaping @Sendable () -> Int) {
        let gauge = self.registry.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help))
        self.scrapeTimeGauges.withLock { $0.append((gauge, read)) }
    }

    /// The Prometheus text exposition, with every scrape-time gauge read now.
    public func exposition() -> [UInt8] {
        for (gauge, read) in self.scrapeTimeGauges.withLock({ $0 }) { gauge.set(Int64(read())) }
        return self.registry.emitToBuffer()
    }
}
