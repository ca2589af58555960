package io.csattention.spark;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.csattention.format.FuzzLoop;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The manifest parser under {@link FuzzLoop}: a mutated manifest is refused with a one-line ManifestException, or
 * accepted with every file it names under the index path's data/. Seeds: manifests as the commit writes them
 * (pretty-printed) and compact, with GQA and pre-GQA entries.
 */
class ManifestFuzzTest {

    @Test
    void manifests() throws Exception {
        Map<String, String> options = new LinkedHashMap<>();
        options.put("sparsity", "0.95");
        options.put("centroids", "64");
        Map<String, Long> counters = Map.of("contextsPrefilled", 2L, "headsBuilt", 3L);
        List<IndexSet.Entry> heads = List.of(
                new IndexSet.Entry("data/job-a/part-00000/00000.csai", "ctx-0", 0, 0, 240, 16, 9000, 1234567L, 2),
                new IndexSet.Entry("data/job-a/part-00000/00001.csai", "ctx-0", 0, 1, 240, 16, 9000, -5L, 2),
                new IndexSet.Entry("data/job-b/part-00001/00000.csai", "ctx-\u00e9", 3, 0, 7, 4, 500, 0L, 0));
        IndexSet.Manifest manifest = new IndexSet.Manifest(IndexSet.FORMAT, IndexSet.VERSION, 3, "job-b",
                "2025-12-02T00:00:00Z", options, counters, heads);
        ObjectMapper json = new ObjectMapper();
        List<byte[]> seeds = List.of(json.writerWithDefaultPrettyPrinter().writeValueAsBytes(manifest),
                json.writeValueAsBytes(manifest));
        String root = "/idx";
        for (byte[] seed : seeds) {
            assertEquals(heads, IndexSet.parseManifest(seed, root + "/_manifest-00000003.json", 3).heads());
        }
        FuzzLoop.Report report = FuzzLoop.run("manifest", seeds, 10_000,
                FuzzLoop.tokens("null", "-1", "1e999", "99999999999999999999", "\"/etc/passwd\"", "\"data/../../x\"",
                        "\"file:/x\"", "[[[[[[[[[[[[[[[[[[[[", "{\"a\":", "\"\\u0000\"", "\"version\" : 2", "\"heads\":{}",
                        "\"commit\" : 4", "0.5", "true", "\"\\n\""),
                (input, i) -> {
                    IndexSet.Manifest parsed = IndexSet.parseManifest(input, root + "/_manifest-00000003.json", 3);
                    for (IndexSet.Entry e : parsed.heads()) {
                        String file = IndexSet.resolve(root, e).toString();
                        if (!file.startsWith(root + "/data/") || file.contains("/../")) {
                            return "accepted a file outside " + root + "/data/: " + file;
                        }
                    }
                    return null;
                }, List.of(IndexSet.ManifestException.class));
        assertEquals(List.of(), report.unclean(), report.toString());
    }
}
