// Lets Node run a policy natively (`node --import <this file> --test`): resolves the component
// imports `switchyard:policy/log@0.2.0` and `switchyard:policy/state@0.2.0` to stand-ins that
// keep log lines and state in `globalThis.switchyardHost` ({ logs: [[level, message]], state:
// Map<string, Uint8Array>, deciding }). Like the host, state refuses writes while `deciding`
// (testing.mjs's decide() sets it).
import { register } from 'node:module';

globalThis.switchyardHost ??= { logs: [], state: new Map(), deciding: false };

const stubs = {
  'switchyard:policy/log': `
    export function log(level, message) { globalThis.switchyardHost.logs.push([level, message]); }`,
  'switchyard:policy/state': `
    const host = () => globalThis.switchyardHost;
    export function get(key) { return host().state.get(key); }
    export function set(key, value) {
      if (host().deciding) {
        const e = new Error('state is read-only while deciding: write it in on-outcome');
        e.payload = e.message;
        throw e;
      }
      host().state.set(key, Uint8Array.from(value));
    }
    export function remove(key) { if (!host().deciding) host().state.delete(key); }`,
};

register(
  'data:text/javascript,' +
    encodeURIComponent(`
      const stubs = ${JSON.stringify(stubs)};
      export async function resolve(specifier, context, next) {
        const stub = stubs[specifier.split('@')[0]];
        if (stub !== undefined) {
          return { url: 'data:text/javascript,' + encodeURIComponent(stub), shortCircuit: true };
        }
        return next(specifier, context);
      }
    `),
);
