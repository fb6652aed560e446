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
    /// Counters the daemon totals itself (per event loop): the counter, its reader, what it last added up to.
    private let scrapeTimeCounters = Mutex<[(Prometheus.Counter, @Sendable () -> Int, Int)]>([])

    private init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// Bootstraps swift-metrics with a Prometheus registry. Once per process, before the servers
    /// that count are created (their counters bind to the backend then).
    public static func bootstrapPrometheus() -> AdminMetrics {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(DescribedMetricsFactory(registry: registry, base: PrometheusMetricsFactory(registry: registry)))
        return AdminMetrics(registry: registry)
    }

    /// A gauge named `name` whose value is `read()` at each scrape.
    public func gauge(_ name: String, help: String, read: @escaping @Sendable () -> Int) {
        let gauge = self.registry.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help))
        self.scrapeTimeGauges.withLock { $0.append((gauge, read)) }
    }

    /// A counter named `name` with `labels` whose total is `read()` at each scrape (it only grows).
    public func counter(_ name: String, labels: [(String, String)], help: String, read: @escaping @Sendable () -> Int) {
        let counter = self.registry.makeCounter(
            descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
        self.scrapeTimeCounters.withLock { $0.append((counter, read, 0)) }
    }

    /// `NAME_build_info{version="…"} 1`, as Prometheus' own exporters name their version.
    public func buildInfo(_ name: String, version: String) {
        let gauge = self.registry.makeGauge(
            descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: "The version of this daemon (always 1)."),
            labels: [("version", version)])
        gauge.set(to: 1.0)
    }

    /// The Prometheus text exposition, with every scrape-time gauge and counter read now.
    public func exposition() -> [UInt8] {
        for (gauge, read) in self.scrapeTimeGauges.withLock({ $0 }) { gauge.set(Int64(read())) }
        self.scrapeTimeCounters.withLock { counters in
            for index in counters.indices {
                let total = counters[index].1()
                if total > counters[index].2 { counters[index].0.increment(by: Int64(total - counters[index].2)) }
                counters[index].2 = max(total, counters[index].2)
            }
        }
        var text = self.registry.emitToBuffer()
        text += ProcessMetrics.read()?.exposition() ?? []
        return text
    }
}
