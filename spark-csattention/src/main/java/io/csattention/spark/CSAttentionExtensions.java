package io.csattention.spark;

import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.SparkSessionExtensions;
import org.apache.spark.sql.catalyst.FunctionIdentifier;
import org.apache.spark.sql.catalyst.expressions.ApplyFunctionExpression;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.ExpressionInfo;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.MapType;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.unsafe.types.UTF8String;
import scala.Function1;
import scala.Tuple3;
import scala.collection.immutable.Seq;
import scala.runtime.BoxedUnit;

import java.util.Map;

/**
 * {@code spark.sql.extensions=io.csattention.spark.CSAttentionExtensions}: registers the SQL function
 * {@code csattention_decode(index_path, context_id, layer, head, query [, flags [, query_id]])} ({@link DecodeFunction}).
 */
public final class CSAttentionExtensions implements Function1<SparkSessionExtensions, BoxedUnit> {

    static final String USAGE = "_FUNC_(index_path, context_id, layer, head, query[, flags[, query_id]]) - the "
            + "CSAttention output of the query vector against one head of the index set at index_path. flags: true "
            + "(with_selected: a struct of output and selected_ids), or a string of selected, route (a struct with "
            + "an error field: a bad row gives its error and null output) and fail; session option "
            + "spark.csattention.onError=route makes route the default. query_id: named in a bad row's error.";

    @Override
    public BoxedUnit apply(SparkSessionExtensions extensions) {
        Function1<Seq<Expression>, Expression> builder = CSAttentionExtensions::decode;
        extensions.injectFunction(new Tuple3<>(FunctionIdentifier.apply(DecodeFunction.NAME),
                new ExpressionInfo(DecodeFunction.class.getName(), null, DecodeFunction.NAME, USAGE, ""), builder));
        return BoxedUnit.UNIT;
    }

    private static Expression decode(Seq<Expression> arguments) {
        int n = arguments.size();
        if (n < 5 || n > 7) {
            throw new IllegalArgumentException(DecodeFunction.NAME + " takes (index_path, context_id, layer, head, "
                    + "query[, flags[, query_id]]); arguments=" + n);
        }
        SparkSession spark = SparkSession.active();
        CSAttentionOptions options = CSAttentionOptions.from(spark, Map.of());
        Object value = null;
        DataType flagsType = null;
        if (n >= 6) {
            Expression flag = arguments.apply(5);
            value = flag.foldable() ? flag.eval(null) : null;
            if (!(value instanceof Boolean) && !(value instanceof UTF8String)) {
                throw new IllegalArgumentException(DecodeFunction.NAME + " flags must be the literal true or false, "
                        + "or a string literal such as 'route,selected'; flags=" + flag.sql());
            }
            flagsType = flag.dataType();
        }
        DataType queryIdType = null;
        if (n == 7) {
            queryIdType = arguments.apply(6).dataType();
            if (queryIdType instanceof ArrayType || queryIdType instanceof StructType
                    || queryIdType instanceof MapType) {
                throw new IllegalArgumentException(DecodeFunction.NAME + " query_id must be of an atomic type; "
                        + "query_id=" + queryIdType.simpleString());
            }
        }
        DecodeFunction.Flags flags = DecodeFunction.flags(value, options.routeErrors());
        HadoopConf conf = new HadoopConf(spark.sparkContext().hadoopConfiguration());
        return new ApplyFunctionExpression(new DecodeFunction(options, flagsType, queryIdType, flags, conf,
                new CSAttentionMetrics(spark.sparkContext())), arguments);
    }
}
