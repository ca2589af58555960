/**
 * The Spark extension, and the only package that imports Spark or Hadoop. Thin adapters: options are parsed once
 * into {@link io.csattention.spark.CSAttentionOptions} (immutable, serializable) and the work is done by the core
 * ({@code io.csattention.core}) and the index file format ({@code io.csattention.format.IndexFile}).
 *
 * <h2>Entry points</h2>
 * <ul>
 *   <li>Java API {@link io.csattention.spark.CSAttention}: {@code buildIndexes(contexts, path, options)} and
 *       {@code decode(queries, path, options)}.</li>
 *   <li>DataSource V2 {@code csattention} ({@link io.csattention.spark.CSAttentionDataSource}):
 *       {@code df.write.format("csattention").mode("overwrite"|"append").save(path)} builds,
 *       {@code spark.read.format("csattention").load(path)} lists the heads.</li>
 *   <li>{@code spark.sql.extensions=io.csattention.spark.CSAttentionExtensions}: SQL
 *       {@code csattention_decode(index_path, context_id, layer, kv_head, query[, with_selected])}.</li>
 * </ul>
 *
 * <h2>Data flow</h2>
 * Build: the contexts table ({@code ContextsSchema}) is clustered by context and sorted by head and chunk (the
 * write requires it, Spark plans the shuffle); each task builds every head of its contexts once
 * ({@code IndexBuildWriter}) into a task attempt directory; the job commit ({@link io.csattention.spark.IndexSet})
 * moves committed tasks' files and creates the next manifest, which is what readers accept.
 * <p>Decode: the driver counts the queries' rows per context, layer and head, reads the manifest, broadcasts the
 * requested heads' metadata and centroid tables (and the whole files when they total at most
 * {@code broadcastThreshold}) and plans tasks by head ({@code DecodeTasks}: one head, or a few small ones, and at
 * most {@code rowsPerTask} rows a task); the rows are shuffled into those tasks, each task decodes its rows grouped
 * by head in blocks ({@code DecodePartition}), borrowing one head at a time from the executor's cache
 * ({@code ExecutorIndexCache}: at most {@code cacheBudget} bytes, unborrowed heads evicted least recently used
 * first), and a second shuffle gives the rows back in the input's order. Counters are accumulators
 * ({@link io.csattention.spark.CSAttentionMetrics}), with loads and the cache's high-water mark per executor.
 */
package io.csattention.spark;
