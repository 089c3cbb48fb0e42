// An app's typed use of the state and collab plugins: tsc --strict checks it (test/types.test.mjs).

import { CollabErrorCodes, RpcClient, RpcError, StateErrorCodes } from '../src/index.js';
import type {
  Addressed, ConflictData, ConflictInfo, PatchOperation, PatchParams, PatchResult, Resolution, SessionView,
  StateChanged, StateDocument, Subscribed, UnavailableData,
} from '../src/index.js';

interface Board {
  title: string;
  cards: string[];
}

export async function collaborate(client: RpcClient): Promise<void> {
  const doc = await client.call<StateDocument<Board>>('state.get', { doc: 'board' });
  const ops: PatchOperation[] = [{ op: 'add', path: '/cards/-', value: 'new card' }];
  try {
    const params: PatchParams = { doc: 'board', ops, base_version: doc.version, idempotency_key: crypto.randomUUID() };
    const done = await client.call<PatchResult>('state.patch', params);
    console.log(done.version + 1);
  } catch (error) {
    if (error instanceof RpcError && error.code === StateErrorCodes.Conflict) {
      const data = error.data as ConflictData;
      if (data.conflict_id) {
        const resolved = await client.call<Resolution>('collab.resolve', { conflict_id: data.conflict_id, strategy: 'merge' });
        console.log(resolved.overridden.join());
      }
    }
    if (error instanceof RpcError && error.code === CollabErrorCodes.Locked) console.log(error.message);
    if (error instanceof RpcError && error.code === StateErrorCodes.Unavailable) {
      const { retry_after = 1 } = error.data as UnavailableData;
      console.log(`retry the same params (same idempotency_key) in ${retry_after} s`);
    }
  }
  const caught = await client.call<Subscribed<Board>>('state.subscribe', { doc: 'board', since_version: doc.version });
  const title: string = caught.full ? caught.value.title : caught.ops.map((op) => op.path).join();
  console.log(title);
  client.on<StateChanged>('state.changed', ({ from, to, ops: changes }) => console.log(from, to, changes.length));
  client.on<ConflictInfo & Addressed>('collab.conflict', (conflict) => console.log(conflict.$meta.to, conflict.path));
  const session = await client.call<SessionView>('collab.join', { session: 'board' });
  console.log(session.participants.map((p) => `${p.participant}:${p.status}`));
  // @ts-expect-error 'theirs' and friends only: a strategy is one of four words
  const strategy: Resolution['strategy'] = 'yours';
  console.log(strategy);
}
