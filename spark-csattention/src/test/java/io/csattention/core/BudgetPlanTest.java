package io.csattention.core;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class BudgetPlanTest {

    @Test
    void budgetCountsEveryAttendedKey() {
        BudgetPlan plan = BudgetPlan.of(1000, 0.95, 4, 16);
        assertEquals(50, plan.budget());
        assertEquals(30, plan.chosen());
        assertEquals(4, plan.middleStart());
        assertEquals(984, plan.middleEnd());
    }

    @Test
    void automaticSinkAndWindowAreSmallSharesOfTheBudget() {
        BudgetPlan small = BudgetPlan.of(448, 0.95, -1, -1);
        assertEquals(23, small.budget());
        assertEquals(2, small.sink());
        assertEquals(2, small.window());
        BudgetPlan large = BudgetPlan.of(131072, 0.95, -1, -1);
        assertEquals(4, large.sink());
        assertEquals(64, large.window());
    }

    @Test
    void rejectsSparsityOutsideTheOpenUnitInterval() {
        var error = assertThrows(IllegalArgumentException.class, () -> BudgetPlan.of(100, 1.5, -1, -1));
        assertEquals("sparsity must be in (0, 1); sparsity=1.5", error.getMessage());
    }

    @Test
    void rejectsABudgetSmallerThanSinkAndWindow() {
        var error = assertThrows(IllegalArgumentException.class, () -> BudgetPlan.of(100, 0.95, 4, 4));
        assertEquals("budget must be >= sink + window = 8 (raise sparsity's budget or lower --sink/--window); "
                + "budget=5", error.getMessage());
    }
}
