// The public surface of @bridge-rpc/client: the transport-free client and its errors.
// Transports live in their own entry points ("@bridge-rpc/client/node").

export { RpcClient } from './client.js';
export { CallCancelledError, CallTimeoutError, ConnectionClosedError, ErrorCodes, RpcError } from './errors.js';
export { participantOf } from './identity.js';
export { CollabErrorCodes, StateErrorCodes } from './state.js';
