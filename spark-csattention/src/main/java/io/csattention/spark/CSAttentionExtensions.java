package io.csattention.spark;

import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.SparkSessionExtensions;
import org.apache.spark.sql.catalyst.FunctionIdentifier;
import org.apache.spark.sql.catalyst.expressions.ApplyFunctionExpression;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.ExpressionInfo;
import scala.Function1;
import scala.Tuple3;
import scala.collection.immutable.Seq;
import scala.runtime.BoxedUnit;

import java.util.Map;

/**
 * {@code spark.sql.extensions=io.csattention.spark.CSAttentionExtensions}: registers the SQL function
 * {@code csattention_decode(index_path, context_id, layer, kv_head, query [, with_selected])} ({@link DecodeFunction}).
 */
public final class CSAttentionExtensions implements Function1<SparkSessionExtensions, BoxedUnit> {

    static final String USAGE = "_FUNC_(index_path, context_id, layer, kv_head, query[, with_selected]) - the "
            + "CSAttention output of the query vector against one head of the index set at index_path; with "
            + "with_selected = true a struct of output and selected_ids.";

    @Override
    public BoxedUnit apply(SparkSessionExtensions extensions) {
        Function1<Seq<Expression>, Expression> builder = CSAttentionExtensions::decode;
        extensions.injectFunction(new Tuple3<>(FunctionIdentifier.apply(DecodeFunction.NAME),
                new ExpressionInfo(DecodeFunction.class.getName(), null, DecodeFunction.NAME, USAGE, ""), builder));
        return BoxedUnit.UNIT;
    }

    private static Expression decode(Seq<Expression> arguments) {
        int n = arguments.size();
        if (n != 5 && n != 6) {
            throw new IllegalArgumentException(DecodeFunction.NAME + " takes (index_path, context_id, layer, kv_head, "
                    + "query[, with_selected]); arguments=" + n);
        }
        boolean withSelected = false;
        if (n == 6) {
            Expression flag = arguments.apply(5);
            Object value = flag.foldable() ? flag.eval(null) : null;
            if (!(value instanceof Boolean)) {
                throw new IllegalArgumentException(DecodeFunction.NAME + " with_selected must be the literal true or "
                        + "false; with_selected=" + flag.sql());
            }
            withSelected = (Boolean) value;
        }
        SparkSession spark = SparkSession.active();
        CSAttentionOptions options = CSAttentionOptions.from(spark, Map.of());
        HadoopConf conf = new HadoopConf(spark.sparkContext().hadoopConfiguration());
        return new ApplyFunctionExpression(new DecodeFunction(options, n, withSelected, conf), arguments);
    }
}
