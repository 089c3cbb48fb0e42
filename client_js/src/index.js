// The public surface of @bridge-rpc/client: the transport-free client, its errors and the
// Supervisor. Transports live in their own entry points ("@bridge-rpc/client/node", ".../tauri"),
// which re-export all of this.

export { RpcClient, consoleTrace } from './client.js';
export { CallCancelledError, CallTimeoutError, ConnectionClosedError, ErrorCodes, RpcError } from './errors.js';
export { participantOf } from './identity.js';
export { CollabErrorCodes, StateErrorCodes, stateSubscription } from './state.js';
export { HEALTH_DEFAULTS, QueueFullError, RESTART_DEFAULTS, SidecarCrashedError, Supervisor, restartDelay } from './supervisor.js';
export { attachTerminal } from './terminal.js';
