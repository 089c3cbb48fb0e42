// Types for an app's API map, the type parameter of every client: `new RpcClient<Api>(...)`,
// `spawnSidecar<Api>(...)`, `Supervisor<Api>`, `RendererBridge<Api>`. `bridge types app:app`
// writes `Api` from the app's type hints. Without it (the default, `any`) calls are untyped.

import type { CallOptions, CallStream, MetaCallOptions, Params, ResultWithMeta, Unsubscribe } from './index.js';

/** One method as `bridge types` describes it. */
export interface MethodSpec {
  /** The params by name; `never` when the method takes them by position only. */
  params: object;
  /** The params by position, as a (labelled) tuple. */
  positional: readonly unknown[];
  /** What the call resolves with. */
  result: unknown;
  /** A streaming method's items (each chunk is an array of them). */
  item?: unknown;
  /** The `data` of the application errors the method declares, by code. */
  errors?: { [code: number]: unknown };
}

/** The shape `bridge types` writes: methods by name, and the events the app declares. */
export interface ApiSpec {
  methods: { [name: string]: MethodSpec };
  events?: { [name: string]: unknown };
}

/** True for an API map, false for the default `any` (and anything that is not one). */
export type IsTyped<Api> = 0 extends 1 & Api ? false : Api extends { methods: object } ? true : false;

type Methods<Api> = Api extends { methods: infer M } ? M : never;
type Events<Api> = Api extends { events: infer E } ? E : {};
type Spec<Api, M> = M extends keyof Methods<Api> ? Methods<Api>[M] : never;

/** The names of the API's methods. */
export type MethodName<Api> = keyof Methods<Api> & string;
/** The names of its streaming methods. */
export type StreamName<Api> = { [M in MethodName<Api>]: Spec<Api, M> extends { item: unknown } ? M : never }[MethodName<Api>];
/** The names of the events it declares. */
export type EventName<Api> = keyof Events<Api> & string;

/** What method `M` takes: its params by name (an object) or by position (a tuple). */
export type ParamsOf<Api, M extends MethodName<Api>> =
  | (Spec<Api, M> extends { params: infer P } ? P : never)
  | (Spec<Api, M> extends { positional: infer T } ? T : never);
/** What the host replies to `M` (for a streaming method, the closing `{ items, chunks }`). */
export type ResultOf<Api, M extends MethodName<Api>> = Spec<Api, M> extends { result: infer R } ? R : unknown;
/** What `call(M, ...)` resolves with: the reply, or a streaming method's items collected. */
export type CallResultOf<Api, M extends MethodName<Api>> = Spec<Api, M> extends { item: infer I } ? I[] : ResultOf<Api, M>;
/** `M`'s params by name (what `meta: true` needs). */
export type NamedParamsOf<Api, M extends MethodName<Api>> = Spec<Api, M> extends { params: infer P } ? P : never;
/** The items streaming method `M` yields. */
export type ItemOf<Api, M extends MethodName<Api>> = Spec<Api, M> extends { item: infer I } ? I : never;
/** The `data` of error `C` that `M` declares (`unknown` where none is declared). */
export type ErrorDataOf<Api, M extends MethodName<Api>, C extends number> =
  Spec<Api, M> extends { errors: infer E } ? (C extends keyof E ? E[C] : unknown) : unknown;
/** The params event `E` comes with. */
export type EventOf<Api, E extends EventName<Api>> = Events<Api>[E];

/** Whether a call may leave the params out: none are required by name or by position. */
type ParamsOptional<S> = S extends { positional: infer T } ? ([] extends T ? true : false) : false;
/**
 * The arguments after the method's name: the params (optional when none is required), then the
 * options. Distributed over a union of names, so an unknown name is reported as such, not as a count.
 */
export type ArgsOf<Api, M extends MethodName<Api>, O> = M extends unknown
  ? ParamsOptional<Spec<Api, M>> extends true
    ? [params?: ParamsOf<Api, M>, options?: O]
    : [params: ParamsOf<Api, M>, options?: O]
  : never;

/**
 * `call()` of a client: typed by the API map `Api`, untyped (`call<R>(method, params)`) without one;
 * with the `meta: true` overload where the options have `meta` (RpcClient's, the Supervisor's).
 */
export type CallFunction<Api, O> = IsTyped<Api> extends true
  ? ('meta' extends keyof O ? TypedCall<Api, O> & TypedMetaCall<Api, O & CallOptions> : TypedCall<Api, O>)
  : ('meta' extends keyof O ? UntypedCall<O> & UntypedMetaCall<O & CallOptions> : UntypedCall<O>);
/** `stream()`: the items of a typed API's streaming methods, or `stream<T>(...)` untyped. */
export type StreamFunction<Api, O> = IsTyped<Api> extends true ? TypedStream<Api, O> : UntypedStream<O>;
/** `on()`: the declared events of a typed API, each with its params, or `on<P>(...)` untyped. */
export type OnFunction<Api> = IsTyped<Api> extends true ? TypedOn<Api> : UntypedOn;
/** `notify()`: a notification to one of the API's methods, or to any name untyped. */
export type NotifyFunction<Api, O> = IsTyped<Api> extends true ? TypedNotify<Api, O> : UntypedNotify<O>;

export interface TypedCall<Api, O> {
  <M extends MethodName<Api>>(method: M, ...args: ArgsOf<Api, M, O>): Promise<CallResultOf<Api, M>>;
}
export interface TypedMetaCall<Api, O extends CallOptions> {
  <M extends MethodName<Api>>(method: M, params: NamedParamsOf<Api, M> | undefined, options: MetaCallOptions<O>):
    Promise<ResultWithMeta<CallResultOf<Api, M>>>;
}
export interface UntypedCall<O> {
  <R = any>(method: string, params?: Params, options?: O): Promise<R>;
}
export interface UntypedMetaCall<O extends CallOptions> {
  <R = any>(method: string, params: Record<string, unknown> | undefined, options: MetaCallOptions<O>): Promise<ResultWithMeta<R>>;
}
export interface TypedStream<Api, O> {
  <M extends StreamName<Api>>(method: M, ...args: ArgsOf<Api, M, O>): CallStream<ItemOf<Api, M>>;
}
export interface UntypedStream<O> {
  <T = any>(method: string, params?: Params, options?: O): CallStream<T>;
}
export interface TypedOn<Api> {
  <E extends EventName<Api>>(event: E, handler: (params: EventOf<Api, E>, event: E) => void): Unsubscribe;
}
export interface UntypedOn {
  <P = any>(event: string, handler: (params: P, event: string) => void): Unsubscribe;
}
export interface TypedNotify<Api, O> {
  <M extends MethodName<Api>>(method: M, ...args: ArgsOf<Api, M, O>): void;
}
export interface UntypedNotify<O> {
  (method: string, params?: Params, options?: O): void;
}
