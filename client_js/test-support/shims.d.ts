// The shapes of Electron's and @tauri-apps/plugin-shell's declarations that the bridge
// helpers take (neither package is installed here), written after their own .d.ts files so
// typecheck.ts shows the real objects fit the helpers' parameter types.

declare module 'electron' {
  import type { EventEmitter } from 'node:events';

  interface WebFrameMain {
    readonly url: string;
    readonly processId: number;
    readonly routingId: number;
    send(channel: string, ...args: any[]): void;
  }
  interface WebContents extends EventEmitter {
    readonly id: number;
    send(channel: string, ...args: any[]): void;
    isDestroyed(): boolean;
    once(event: 'destroyed', listener: () => void): this;
    once(event: string, listener: (...args: any[]) => void): this;
    removeListener(event: 'destroyed', listener: () => void): this;
    removeListener(event: string, listener: (...args: any[]) => void): this;
  }
  interface IpcMainInvokeEvent {
    type: 'frame';
    frameId: number;
    processId: number;
    sender: WebContents;
    senderFrame: WebFrameMain | null;
  }
  interface IpcMainEvent extends IpcMainInvokeEvent {
    returnValue: any;
    reply(channel: string, ...args: any[]): void;
  }
  interface IpcMain extends EventEmitter {
    handle(channel: string, listener: (event: IpcMainInvokeEvent, ...args: any[]) => Promise<any> | any): void;
    handleOnce(channel: string, listener: (event: IpcMainInvokeEvent, ...args: any[]) => Promise<any> | any): void;
    on(channel: string, listener: (event: IpcMainEvent, ...args: any[]) => void): this;
    removeHandler(channel: string): void;
    removeListener(channel: string, listener: (...args: any[]) => void): this;
  }
  interface IpcRendererEvent {
    sender: IpcRenderer;
  }
  interface IpcRenderer extends EventEmitter {
    invoke(channel: string, ...args: any[]): Promise<any>;
    send(channel: string, ...args: any[]): void;
    on(channel: string, listener: (event: IpcRendererEvent, ...args: any[]) => void): this;
  }
  interface ExecutionScript {
    func: (...args: any[]) => any;
    args?: any[];
  }
  interface ContextBridge {
    executeInMainWorld(executionScript: ExecutionScript): any;
    exposeInIsolatedWorld(worldId: number, apiKey: string, api: any): void;
    exposeInMainWorld(apiKey: string, api: any): void;
  }
  interface App extends EventEmitter {
    quit(): void;
    whenReady(): Promise<void>;
  }
  export const app: App;
  export const ipcMain: IpcMain;
  export const ipcRenderer: IpcRenderer;
  export const contextBridge: ContextBridge;
}

declare module '@tauri-apps/plugin-shell' {
  interface SpawnOptions {
    cwd?: string;
    env?: Record<string, string>;
    encoding?: string;
  }
  interface TerminatedPayload {
    code: number | null;
    signal: number | null;
  }
  type IOPayload = string | Uint8Array;
  interface CommandEvents {
    close: TerminatedPayload;
    error: string;
  }
  interface OutputEvents<O extends IOPayload> {
    data: O;
  }
  class EventEmitter<E extends Record<string, any>> {
    on<N extends keyof E>(eventName: N, listener: (arg: E[typeof eventName]) => void): this;
    off<N extends keyof E>(eventName: N, listener: (arg: E[typeof eventName]) => void): this;
  }
  class Child {
    pid: number;
    constructor(pid: number);
    write(data: IOPayload | number[]): Promise<void>;
    kill(): Promise<void>;
  }
  class Command<O extends IOPayload> extends EventEmitter<CommandEvents> {
    private constructor();
    readonly stdout: EventEmitter<OutputEvents<O>>;
    readonly stderr: EventEmitter<OutputEvents<O>>;
    static sidecar(program: string, args?: string | string[]): Command<string>;
    static sidecar(program: string, args?: string | string[], options?: SpawnOptions & { encoding: 'raw' }): Command<Uint8Array>;
    static sidecar(program: string, args?: string | string[], options?: SpawnOptions): Command<string>;
    spawn(): Promise<Child>;
  }
  export { Child, Command, EventEmitter };
  export type { SpawnOptions, TerminatedPayload };
}
