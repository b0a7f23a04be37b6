// Lets Node load flash_first.js natively: resolves the component import
// `switchyard:policy/log@0.1.0` to a stub that records log lines in globalThis.policyLogs.
import { register } from 'node:module';

register(
  'data:text/javascript,' +
    encodeURIComponent(`
      export async function resolve(specifier, context, next) {
        if (specifier.startsWith('switchyard:policy/log')) {
          const stub = 'export function log(level, message) { (globalThis.policyLogs ??= []).push([level, message]); }';
          return { url: 'data:text/javascript,' + encodeURIComponent(stub), shortCircuit: true };
        }
        return next(specifier, context);
      }
    `),
);
