import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pythonClient } from '../helpers/python-client.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** The Python SDK's structured-output helper: a pydantic model in, a parsed instance out. */
const SCRIPT = `
import json, sys
from typing import List, Literal
from openai import OpenAI
from pydantic import BaseModel, Field

class Place(BaseModel):
    name: str = Field(max_length=12)
    kind: Literal["river", "sea", "lake"]
    depth_m: int = Field(ge=0, le=500)
    tags: List[Literal["cold", "warm", "deep"]] = Field(max_length=3)

client = OpenAI(base_url=sys.argv[1], api_key="unused", max_retries=0)
out = []
for i in range(5):
    r = client.chat.completions.parse(model="tiny", messages=[{"role": "user", "content": f"Place {i}?"}],
                                      response_format=Place, max_tokens=200, temperature=1, seed=i)
    p = r.choices[0].message.parsed
    assert isinstance(p, Place), type(p)
    out.append(p.model_dump())
print(json.dumps(out))
`;

describe('the Python SDK against the server', () => {
  let server: TestServer;
  let python: string;

  beforeAll(async () => {
    python = await pythonClient();
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.drain();
  });

  it('chat.completions.parse with a pydantic model returns parsed instances', async () => {
    const r = await execa(python, ['-c', SCRIPT, `${server.url}/v1`], { stdin: 'ignore', reject: false });
    expect(r.stderr).toBe('');
    const places = JSON.parse(r.stdout) as { name: string; kind: string; depth_m: number; tags: string[] }[];
    expect(places).toHaveLength(5);
    for (const p of places) {
      expect(['river', 'sea', 'lake']).toContain(p.kind);
      expect(p.depth_m).toBeGreaterThanOrEqual(0);
      expect(p.depth_m).toBeLessThanOrEqual(500);
      expect(p.name.length).toBeLessThanOrEqual(12);
    }
  });
});
