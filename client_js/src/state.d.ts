// Types for the host's built-in `state` and `collab` plugins (docs/state.md): use them with
// `client.call<R>()` and `client.on<P>()`.

/** Any JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** One RFC 6902 operation. */
export type PatchOperation =
  | { op: 'add' | 'replace' | 'test'; path: string; value: JsonValue }
  | { op: 'remove'; path: string }
  | { op: 'move' | 'copy'; from: string; path: string };

/** `state.get`. */
export interface StateDocument<T = JsonValue> {
  doc: string;
  version: number;
  value: T;
}

/**
 * `state.patch` params. `idempotency_key` (1-256 characters, per participant and document): a
 * patch sent again with the same key, e.g. after a lost reply, is not applied again; the reply has
 * the version it got.
 */
export type PatchParams = {
  doc: string;
  ops: PatchOperation[];
  base_version?: number;
  idempotency_key?: string;
};

/** `state.set` params: replace the whole document (a patch of one `add` at the root). */
export type SetParams<T = JsonValue> = {
  doc: string;
  value: T;
  base_version?: number;
  idempotency_key?: string;
};

/**
 * `data` of a 4505 error: the store could not take the write (the disk), or the Redis backend is
 * unreachable or refused it (`backend: 'redis'`; call again after `retry_after` seconds, a patch
 * with the same `idempotency_key`), or fewer replicas than `wait_replicas` confirmed `version`.
 */
export interface UnavailableData {
  backend?: 'redis';
  retry_after?: number;
  doc?: string;
  version?: number;
  replicas?: number;
}

/** `state.patch` and `state.set`: the version the patch made, once it is on disk (or in Redis). */
export interface PatchResult {
  doc: string;
  version: number;
}

/** `state.subscribe`: ops from `from` to `to`, or the whole value and why. */
export type Subscribed<T = JsonValue> = { subscription: string; doc: string; from: number | null; to: number } & (
  | { full: false; ops: PatchOperation[] }
  | { full: true; value: T; reason: string }
);

/** The `state.changed` event: apply `ops` when `from` is your version. */
export interface StateChanged extends Addressed {
  doc: string;
  from: number;
  to: number;
  ops: PatchOperation[];
  author: string | null;
}

/** The `state.reset` event: the document is this now (after a failed write, or deleted). */
export interface StateReset<T = JsonValue> {
  doc: string;
  version: number;
  value: T;
  deleted?: boolean;
}

/** `data` of a 4501 conflict error. `conflict_id` is there when the document is a session's. */
export interface ConflictData {
  doc: string;
  base_version: number;
  current_version: number;
  paths: string[];
  authors: string[];
  conflict_id?: string;
  session?: string;
}

export type Permission = 'edit' | 'view' | 'comment' | 'share';
export type ConflictStrategy = 'mine' | 'theirs' | 'merge' | 'manual';

export interface LockInfo {
  resource: string;
  kind: 'exclusive' | 'shared';
  holder: string;
  expires_in: number;
}

export interface ParticipantInfo {
  participant: string;
  status: 'active' | 'away';
  permissions: Permission[];
  presence: JsonValue;
}

/** `collab.create_session`, `collab.join`, `collab.session`, `collab.share`. */
export interface SessionView {
  id: string;
  docs: string[];
  created_by: string;
  members: Record<string, Permission[]>;
  participants: ParticipantInfo[];
  locks: LockInfo[];
  /** `collab.join` only: who the host takes the caller for, and its permissions. */
  you?: string;
  permissions?: Permission[];
}

/** `collab.conflicts` items and the `collab.conflict` event (with `to`). */
export interface ConflictInfo {
  conflict_id: string;
  session: string;
  doc: string;
  path: string;
  base_version: number;
  current_version: number;
  base?: JsonValue;
  mine: { participant: string; ops: PatchOperation[]; value?: JsonValue };
  theirs: { participants: string[]; value?: JsonValue };
  resolved?: Resolution;
}

/** `collab.resolve`. */
export interface Resolution {
  strategy: ConflictStrategy;
  by: string;
  version: number;
  /** Keys a merge gave to mine where both sides changed them. */
  overridden: string[];
}

/**
 * Every collab event except `collab.sessions_changed`, and `state.changed` / `state.reset`,
 * name the participants they are for (the Electron helper delivers them only to their windows).
 */
export interface Addressed {
  $meta: { to: string[] };
}

export declare const StateErrorCodes: Readonly<{
  Conflict: 4501;
  PatchFailed: 4502;
  TooLarge: 4503;
  HistoryGone: 4504;
  Unavailable: 4505;
  TooManySubscriptions: 4506;
}>;

export declare const CollabErrorCodes: Readonly<{
  NotAParticipant: 4601;
  Forbidden: 4602;
  Locked: 4603;
  NoSuchSession: 4604;
  NoSuchConflict: 4605;
  SessionExists: 4606;
}>;

/** Supervisor.subscribe() options for `state.subscribe`: resumes from the last version seen. */
export declare const stateSubscription: {
  readonly events: readonly string[];
  resume(params: { doc: string; since_version?: number }, value: unknown): { doc: string; since_version: number } | undefined;
  close(result: { subscription: string }): [method: string, params: { subscription: string }];
};
