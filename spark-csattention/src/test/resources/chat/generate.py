"""Writes templates.jsonl, the fixture of ChatTemplateTest: chat templates of the families the runtime formats, each
rendered by Jinja2 (the engine Hugging Face's apply_chat_template uses, with its settings: a sandboxed environment,
trim_blocks, lstrip_blocks, raise_exception) for messages = [{role: user, content: QUESTION}] with
add_generation_prompt, and the rendering with a leading BOS removed (the tokenizer adds BOS itself; ChatML writes none).
Run once: python3 generate.py (Jinja2 3.1.6). Templates transcribed from the models' tokenizer_config.json
(Qwen2.5's and Mistral v0.3's without their tool-calling branches)."""
import json
from jinja2.sandbox import ImmutableSandboxedEnvironment

TEMPLATES = {
    "llama3 (Meta-Llama-3-8B-Instruct)": (
        "<|begin_of_text|>",
        "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' "
        "+ message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if "
        "loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if "
        "add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"),
    "chatml (Qwen2-7B-Instruct)": (
        "<|endoftext|>",
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
        "'<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + "
        "message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if "
        "add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"),
    "chatml (Qwen2.5-7B-Instruct)": (
        "<|endoftext|>",
        "{%- if messages[0]['role'] == 'system' %}\n    {{- '<|im_start|>system\\n' + messages[0]['content'] + "
        "'<|im_end|>\\n' }}\n{%- else %}\n    {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. "
        "You are a helpful assistant.<|im_end|>\\n' }}\n{%- endif %}\n{%- for message in messages %}\n    {%- if "
        "(message.role == \"user\") or (message.role == \"system\" and not loop.first) or (message.role == "
        "\"assistant\") %}\n        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + "
        "'\\n' }}\n    {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- "
        "'<|im_start|>assistant\\n' }}\n{%- endif %}\n"),
    "llama2 (Llama-2-7b-chat-hf)": (
        "<s>",
        "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
        "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% "
        "endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
        "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
        "loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
        "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if "
        "message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif "
        "message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"),
    "mistral (Mistral-7B-Instruct-v0.2)": (
        "<s>",
        "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% "
        "if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == "
        "'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant "
        "roles are supported!') }}{% endif %}{% endfor %}"),
    "mistral (Mistral-7B-Instruct-v0.3)": (
        "<s>",
        "{%- if messages[0][\"role\"] == \"system\" %}\n    {%- set system_message = messages[0][\"content\"] %}\n"
        "    {%- set loop_messages = messages[1:] %}\n{%- else %}\n    {%- set loop_messages = messages %}\n{%- endif "
        "%}\n\n{{- bos_token }}\n{%- for message in loop_messages %}\n    {%- if message[\"role\"] == \"user\" %}\n"
        "        {%- if loop.last and system_message is defined %}\n            {{- \"[INST] \" + system_message + "
        "\"\\n\\n\" + message[\"content\"] + \"[/INST]\" }}\n        {%- else %}\n            {{- \"[INST] \" + "
        "message[\"content\"] + \"[/INST]\" }}\n        {%- endif %}\n    {%- elif message[\"role\"] == "
        "\"assistant\" %}\n        {{- \" \" + message[\"content\"] + eos_token}}\n    {%- endif %}\n{%- endfor %}\n"),
}
QUESTIONS = ["What is the capital of France?", "  Leading and trailing spaces, a newline\n",
             "Zeilen\nmit Umlauten: äöü, 日本語, emoji 🦙"]


def raise_exception(message):
    raise ValueError(message)


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
env.globals["raise_exception"] = raise_exception
with open("templates.jsonl", "w", encoding="utf-8") as out:
    for name, (bos, source) in TEMPLATES.items():
        for q in QUESTIONS:
            text = env.from_string(source).render(messages=[{"role": "user", "content": q}],
                                                  add_generation_prompt=True, bos_token=bos, eos_token="</s>")
            rendered = text[len(bos):] if text.startswith(bos) else text
            out.write(json.dumps({"name": name, "template": source, "question": q,
                                  "rendered": rendered}, ensure_ascii=False) + "\n")
print(len(TEMPLATES) * len(QUESTIONS), "renderings")
