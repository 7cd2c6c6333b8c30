public import ServiceLifecycle

extension ServiceGroupConfiguration.ServiceConfiguration {
    /// `service` in a `ServiceGroup` under its own description.
    ///
    /// ServiceLifecycle names a service it is not given a name for with `"\(service)"` on the
    /// existential: the runtime then asks which printing protocols the service's type conforms
    /// to, and each answer not yet cached is a scan of every conformance record in the binary
    /// (tens of thousands here). Named, a server's parts cost nothing to put in a group: this
    /// took 1.5 ms of the stdio cold start (Docs/benchmarks.md).
    public static func named(
        _ service: some Service & CustomStringConvertible,
        success: TerminationBehavior = .cancelGroup, failure: TerminationBehavior = .cancelGroup
    ) -> Self {
        .init(
            service: service, successTerminationBehavior: success, failureTerminationBehavior: failure,
            serviceName: service.description)
    }

    /// `service` in a `ServiceGroup` under `name`, for a service whose type says nothing of
    /// itself (a library's opaque `some Service`).
    public static func named(
        _ service: some Service, as name: String, success: TerminationBehavior = .cancelGroup,
        failure: TerminationBehavior = .cancelGroup
    ) -> Self {
        .init(
            service: service, successTerminationBehavior: success, failureTerminationBehavior: failure,
            serviceName: name)
    }
}
