import { describe, expect, it } from 'vitest';
import { parseToolCalls, streamableLength, toolFormat } from '../../src/serve/openai/tools.js';

const TOOLS = [{ type: 'function' as const, function: { name: 'get_time' } }];

describe('tool-call parsing per family', () => {
  it('reads Hermes <tool_call> blocks (Qwen) and keeps the text around them', () => {
    const r = parseToolCalls('hermes', 'Let me check.\n<tool_call>\n{"name": "get_time", "arguments": {"zone": "UTC"}}\n</tool_call>', TOOLS);
    expect(r.content).toBe('Let me check.');
    expect(r.calls.map((c) => [c.function.name, JSON.parse(c.function.arguments)])).toEqual([['get_time', { zone: 'UTC' }]]);
  });

  it('reads Llama 3.1 JSON calls, with or without <|python_tag|>, several separated by ;', () => {
    expect(parseToolCalls('llama3_json', '{"name": "get_time", "parameters": {"zone": "CET"}}', TOOLS).calls[0].function.arguments).toBe('{"zone":"CET"}');
    expect(parseToolCalls('llama3_json', '<|python_tag|>{"name": "get_time", "parameters": {}}; {"name": "get_time", "parameters": {"zone": "UTC"}}', TOOLS).calls).toHaveLength(2);
  });

  it('leaves malformed calls and unknown functions as text', () => {
    expect(parseToolCalls('hermes', '<tool_call>{"name": "nope", "arguments": {}}</tool_call>', TOOLS)).toEqual({ content: '<tool_call>{"name": "nope", "arguments": {}}</tool_call>', calls: [] });
    expect(parseToolCalls('llama3_json', '{"name": "get_time", "parameters": ', TOOLS).calls).toEqual([]);
    expect(parseToolCalls('llama3_json', 'It is noon.', TOOLS)).toEqual({ content: 'It is noon.', calls: [] });
  });

  it('streams text only up to where a call may begin', () => {
    expect(streamableLength('hermes', 'Sure <tool_')).toBe(5);
    expect(streamableLength('hermes', 'Sure <tool_call>{"na')).toBe(5);
    expect(streamableLength('hermes', 'Sure, 3 < 4')).toBe(11);
    expect(streamableLength('llama3_json', ' {"name"')).toBe(0);
    expect(streamableLength('llama3_json', 'Noon.')).toBe(5);
  });

  it('knows which templates take tools', () => {
    expect(toolFormat('{%- if tools %}<tool_call>{%- endif %}')).toBe('hermes');
    expect(toolFormat('{% if tools %}{"name": function name, "parameters": ...}{% endif %}')).toBe('llama3_json');
    expect(toolFormat("{% for message in messages %}{{ message['content'] }}{% endfor %}")).toBeUndefined();
  });
});
