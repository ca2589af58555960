package io.csattention.kernel;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import org.junit.jupiter.api.Test;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

/** JCuda stays behind the backend interface: only io.csattention.kernel.cuda may use it. */
class KernelArchitectureTest {

    private static final JavaClasses CLASSES = new ClassFileImporter()
            .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
            .importPackages("io.csattention");

    @Test
    void onlyTheCudaPackageUsesJcuda() {
        noClasses().that().resideOutsideOfPackage("io.csattention.kernel.cuda..")
                .should().dependOnClassesThat().resideInAPackage("jcuda..")
                .check(CLASSES);
    }
}
