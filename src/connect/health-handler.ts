import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  type Health,
  type HealthCheckRequest,
  type HealthCheckResponse,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthListResponseSchema,
} from "../../gen/grpc/health/v1/health_pb.js";

/** The health of a node: serving until it starts shutting down. */
export interface HealthState {
  /** Marks the node (and every service it names) not serving; watchers hear it at once. */
  setNotServing(): void;
  /** True until {@link HealthState.setNotServing}. */
  readonly serving: boolean;
}

/** Options of {@link createHealthHandler}. */
export interface HealthHandlerOptions {
  /** Fully qualified names of the services the node serves, e.g. "drce.v1.TaskService". */
  readonly services: readonly string[];
}

/** The `grpc.health.v1.Health` implementation and the state it reports. */
export interface HealthHandler {
  /** The service implementation to register on the router. */
  readonly impl: ServiceImpl<typeof Health>;
  /** The status it reports; the node marks itself not serving when it shuts down. */
  readonly state: HealthState;
}

/**
 * Implements the standard gRPC health service: `Check` and `List` answer at once; `Watch`
 * sends the current status, then every change, until the call ends. The empty service name
 * means the node as a whole; an unknown name is NotFound for `Check` and SERVICE_UNKNOWN for
 * `Watch`, as the protocol says. Once the node starts shutting down, everything reports
 * NOT_SERVING, so that load balancers stop sending work before the port closes.
 */
export function createHealthHandler(options: HealthHandlerOptions): HealthHandler {
  const known = new Set(["", ...options.services]);
  let serving = true;
  const listeners = new Set<() => void>();

  const statusOf = (service: string): ServingStatus => {
    if (!known.has(service)) return ServingStatus.SERVICE_UNKNOWN;
    return serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  };
  const response = (status: ServingStatus): HealthCheckResponse => create(HealthCheckResponseSchema, { status });

  const state: HealthState = {
    get serving() {
      return serving;
    },
    setNotServing() {
      if (!serving) return;
      serving = false;
      for (const listener of listeners) listener();
    },
  };

  const impl: ServiceImpl<typeof Health> = {
    check(request: HealthCheckRequest) {
      const status = statusOf(request.service);
      if (status === ServingStatus.SERVICE_UNKNOWN) throw new ConnectError(`unknown service ${JSON.stringify(request.service)}`, Code.NotFound);
      return response(status);
    },
    list() {
      return create(HealthListResponseSchema, { statuses: Object.fromEntries([...known].map((service) => [service, response(statusOf(service))])) });
    },
    async *watch(request: HealthCheckRequest, context: HandlerContext) {
      let last = statusOf(request.service);
      yield response(last);
      if (context.signal.aborted) return;
      // Wait for a change or the end of the call, whichever comes first, and repeat.
      for (;;) {
        const changed = await new Promise<boolean>((resolve) => {
          const onChange = (): void => finish(true);
          const onAbort = (): void => finish(false);
          const finish = (value: boolean): void => {
            listeners.delete(onChange);
            context.signal.removeEventListener("abort", onAbort);
            resolve(value);
          };
          listeners.add(onChange);
          context.signal.addEventListener("abort", onAbort, { once: true });
          if (context.signal.aborted) finish(false);
        });
        if (!changed) return;
        const status = statusOf(request.service);
        if (status !== last) {
          last = status;
          yield response(status);
        }
      }
    },
  };
  return { impl, state };
}
