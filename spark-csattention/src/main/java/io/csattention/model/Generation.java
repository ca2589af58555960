package io.csattention.model;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The one generation loop: sample a token from the logits, stop at a stop token (not kept) or after
 * {@code maxNewTokens}, otherwise feed it back. Used by the {@code generate} command and the Spark answers.
 */
public final class Generation {

    private Generation() {
    }

    /** What was generated and why it ended. */
    public record Result(int[] tokens, boolean stopped) {
    }

    /**
     * Generates from {@code logits} (the logits after the prompt) on {@code session}; {@code stopTokens} ascending
     * (empty: generate {@code maxNewTokens} always).
     */
    public static Result run(Session session, float[] logits, Sampler sampler, int maxNewTokens, int[] stopTokens) {
        int[] generated = new int[maxNewTokens];
        float[] current = logits;
        for (int i = 0; i < maxNewTokens; i++) {
            int token = sampler.sample(current);
            if (Arrays.binarySearch(stopTokens, token) >= 0) {
                return new Result(Arrays.copyOf(generated, i), true);
            }
            generated[i] = token;
            if (i + 1 < maxNewTokens) {
                current = session.decode(token);
            }
        }
        return new Result(generated, false);
    }

    /** One question of a batch: its prompt tokens (after the shared context), its sampler and its token limit. */
    public record Request(int[] prompt, Sampler sampler, int maxNewTokens) {
    }

    /**
     * Continuous batching of many questions about one context: up to {@code batchSize} forks of {@code context}
     * ({@link Session#forkWithAttention}: they share its index) step together through {@link Session#decodeBatch},
     * each first reading its prompt, then sampling; a sequence that stops (a stop token or its limit) leaves the
     * batch and the next request takes its place. Returns one result per request, in request order; each is what
     * {@link #run} gives for the request alone (the same bits: a batched step computes each row as a single one).
     */
    public static List<Result> runBatch(Session context, float[] contextLogits, List<Request> requests,
                                        int batchSize, int[] stopTokens) {
        return runBatch(context, contextLogits, requests, batchSize, stopTokens, bytes -> { });
    }

    /**
     * {@link #runBatch} that tells {@code kvBytes}, after each step, the K and V bytes allocated by the batch's forks
     * together ({@link Session#kvAllocatedBytes}; each fork copies its context's caches), for a peak-memory report.
     */
    public static List<Result> runBatch(Session context, float[] contextLogits, List<Request> requests,
                                        int batchSize, int[] stopTokens, java.util.function.LongConsumer kvBytes) {
        if (batchSize < 1) {
            throw new IllegalArgumentException("batch size must be >= 1; batchSize=" + batchSize);
        }
        Result[] results = new Result[requests.size()];
        List<Active> active = new ArrayList<>(batchSize);
        int next = 0;
        while (next < requests.size() || !active.isEmpty()) {
            while (active.size() < batchSize && next < requests.size()) {
                active.add(new Active(next, requests.get(next), context.forkWithAttention(), contextLogits));
                next++;
            }
            // each sequence's token to feed this step; sequences that end now leave the batch
            List<Active> stepping = new ArrayList<>(active.size());
            int[] feed = new int[active.size()];
            for (Active a : active) {
                int token = a.nextToken(stopTokens);
                if (token < 0) {
                    results[a.index] = a.result();
                } else {
                    feed[stepping.size()] = token;
                    stepping.add(a);
                }
            }
            active = stepping;
            if (stepping.isEmpty()) {
                continue;
            }
            float[][] logits = Session.decodeBatch(stepping.stream().map(a -> a.session).toArray(Session[]::new),
                    Arrays.copyOf(feed, stepping.size()));
            long allocated = 0;
            for (int i = 0; i < stepping.size(); i++) {
                stepping.get(i).logits = logits[i];
                allocated += stepping.get(i).session.kvAllocatedBytes();
            }
            kvBytes.accept(allocated);
        }
        return Arrays.asList(results);
    }

    /** A sequence of a batch: its fork, where it is in its prompt, what it generated. */
    private static final class Active {
        final int index;
        final Request request;
        final Session session;
        float[] logits;
        int prompted;
        final int[] generated;
        int count;
        boolean stopped;
        boolean done;

        Active(int index, Request request, Session session, float[] logits) {
            this.index = index;
            this.request = request;
            this.session = session;
            this.logits = logits;
            this.generated = new int[request.maxNewTokens()];
        }

        /** The token to feed next, or -1 when the sequence has ended (as {@link #run} ends). */
        int nextToken(int[] stopTokens) {
            if (prompted < request.prompt().length) {
                return request.prompt()[prompted++];
            }
            if (done || count == request.maxNewTokens()) {
                return -1;
            }
            int token = request.sampler().sample(logits);
            if (Arrays.binarySearch(stopTokens, token) >= 0) {
                stopped = true;
                return -1;
            }
            generated[count++] = token;
            // run() does not feed the last token back: nothing would read its logits
            if (count == request.maxNewTokens()) {
                done = true;
                return -1;
            }
            return token;
        }

        Result result() {
            return new Result(Arrays.copyOf(generated, count), stopped);
        }
    }
}
