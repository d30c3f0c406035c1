/**
 * The OpenAPI document passes Redocly's recommended rules (@redocly/openapi-core, the engine of
 * `redocly lint`): any error fails, warnings are printed.
 */
import { createConfig, lintFromString } from '@redocly/openapi-core';
import { expect, it } from 'vitest';
import { apiRoutes } from '../../src/http/api.routes.js';
import { buildOpenApi } from '../../src/http/openapi.js';

it('the OpenAPI document has no error under Redocly’s recommended ruleset', async () => {
  const doc = buildOpenApi(apiRoutes, { serverUrl: 'http://portico.test', version: '0.1.0' });
  const config = await createConfig({ extends: ['recommended'] });
  const problems = await lintFromString({ source: JSON.stringify(doc, null, 2), absoluteRef: 'openapi.json', config });
  const render = (p: (typeof problems)[number]) => `${p.ruleId}: ${p.message} at ${p.location[0]?.pointer ?? '#'}`;
  const warnings = problems.filter((p) => p.severity === 'warn').map(render);
  if (warnings.length) console.warn(`OpenAPI lint: ${warnings.length} warning(s)\n${warnings.join('\n')}`);
  expect(problems.filter((p) => p.severity === 'error').map(render)).toEqual([]);
}, 30_000);
