package io.csattention.spark;

import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The task plan of a decode by head: shares, packing of small heads, splits of large ones, bad rows, the keys. */
class DecodeTasksTest {

    private static HeadKey head(int kv) {
        return new HeadKey("ctx", 0, kv);
    }

    @Test
    void largeHeadsGetTasksOfTheirOwnAndSmallOnesShare() {
        Map<HeadKey, Long> rows = Map.of(head(0), 120_000L, head(1), 20_000L, head(2), 25_000L, head(3), 10_000L,
                head(4), 50_000L);
        DecodeTasks plan = DecodeTasks.plan(rows, 50_000, 2);
        assertEquals(50_000, plan.share());
        assertEquals(225_000, plan.rows());
        // 120,000 rows: 3 tasks; 20,000 + 25,000 share one; 10,000 alone (10,000 + 50,000 is over); 50,000 fits one
        assertEquals(Map.of(head(0), List.of(0, 1, 2), head(1), List.of(3), head(2), List.of(3), head(3), List.of(4),
                head(4), List.of(5)), plan.tasksByHead());
        assertEquals(6, plan.tasks());
    }

    @Test
    void aShareBelowRowsPerTaskKeepsEveryCoreBusy() {
        Map<HeadKey, Long> rows = new HashMap<>();
        for (int h = 0; h < 16; h++) {
            rows.put(head(h), 1250L);
        }
        DecodeTasks plan = DecodeTasks.plan(rows, 50_000, 2);
        assertEquals(10_000, plan.share());
        assertEquals(2, plan.tasks(), "8 heads of 1,250 rows a task");
        assertEquals(1, DecodeTasks.plan(Map.of(), 50_000, 4).tasks(), "no rows: one empty task");
    }

    @Test
    void aHeadsRowsAreDealtOverItsTasksAndBadRowsGoToTheFirst() {
        DecodeTasks plan = DecodeTasks.plan(Map.of(head(0), 10L, head(1), 30L), 10, 1);
        assertEquals(Map.of(head(0), List.of(0), head(1), List.of(1, 2, 3)), plan.tasksByHead());
        int[] perTask = new int[plan.tasks()];
        DecodeTasks.ByTask partitioner = new DecodeTasks.ByTask(plan.tasks());
        for (int nth = 0; nth < 30; nth++) {
            long key = plan.shuffleKey(head(1), 5, nth);
            perTask[partitioner.getPartition(key)]++;
            assertEquals(1, (int) key, "the head's place in the plan");
        }
        assertEquals(List.of(0, 10, 10, 10), java.util.Arrays.stream(perTask).boxed().toList());
        assertEquals(0, partitioner.getPartition(plan.shuffleKey(null, 3, 0)));
        assertEquals(0, partitioner.getPartition(plan.shuffleKey(new HeadKey("other", 0, 0), 3, 0)));
        assertEquals(2, (int) plan.shuffleKey(null, 3, 0), "bad rows sort after the first task's heads");
        assertEquals(3, new DecodeTasks.ByInputPartition(4).getPartition(DecodeTasks.sequence(3, (1L << 33) - 1)));
    }
}
